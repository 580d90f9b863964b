#!/usr/bin/env bash
# Every way ttapi-mcp is installed, built and checked as a user would meet it: the wheel and
# sdist, the wheel in a fresh virtual environment outside the checkout, `uvx --from` the
# wheel, the MCP Registry entry, and the Claude Desktop bundle (.mcpb). Each installed copy
# runs the demo (built-in emulator, no key) and answers tools/list over real stdio.
# Run from the checkout root with the development environment active (.ci/run does).
set -euo pipefail
root=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
step() { echo "+ $*"; }

step "python -m build (sdist and wheel)"
rm -rf dist
python -m build --outdir dist . > "$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
wheel=$(ls "$root"/dist/ttapi_mcp-*-py3-none-any.whl)
ls dist

step "fresh virtual environment outside the checkout: pip install $(basename "$wheel")"
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "$wheel" 2>&1 | grep -v "is ignored" || true
cd "$work"
"$work/venv/bin/ttapi-mcp" --version
"$work/venv/bin/ttapi-mcp" demo "a lighthouse from the wheel" > demo.log
grep "Saved image:" demo.log
"$work/venv/bin/python" "$root/packaging/check_stdio.py" "$work/venv/bin/ttapi-mcp" serve
cd "$root"

step "uvx --from $(basename "$wheel") ttapi-mcp demo (uv from PyPI)"
python -m pip install -q "uv>=0.5" 2>&1 | grep -v "is ignored" || true
export UV_CACHE_DIR="$work/uv-cache"
cd "$work"
uvx --from "$wheel" ttapi-mcp demo "a lighthouse through uvx" > uvx-demo.log
grep "Saved image:" uvx-demo.log
"$work/venv/bin/python" "$root/packaging/check_stdio.py" uvx --from "$wheel" ttapi-mcp serve
cd "$root"

step "packaging/server.json against the MCP Registry's schema"
python packaging/check_server_json.py

step "Claude Desktop bundle: npm @anthropic-ai/mcpb validate and pack, then start it as its manifest says"
command -v npm > /dev/null || { apt-get update && apt-get install -y nodejs npm; }
npm install --silent --no-audit --no-fund --prefix "$work/npm" @anthropic-ai/mcpb@2.1.2
export MCPB="$work/npm/node_modules/.bin/mcpb"
python packaging/mcpb/build.py --wheel "$wheel" --out dist
python packaging/mcpb/check.py dist/ttapi-mcp.mcpb
