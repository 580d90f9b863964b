"""Start a ttapi-mcp server with the given command over real stdio and list its tools.

Used by CI on installed copies (the wheel in a fresh virtual environment, `uvx`, the
unpacked .mcpb bundle): it proves the installed entry point starts and answers, with no
key and no network. Exit 0 when the four tools are listed.

    python packaging/check_stdio.py COMMAND [ARG ...]
"""

from __future__ import annotations

import os
import sys
import tempfile

import anyio

EXPECTED = {"generate_image", "edit_image", "gpt4o_image", "fetch_job"}


async def list_tools(command: str, args: list[str]) -> set[str]:
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    out = tempfile.mkdtemp(prefix="ttapi-mcp-check-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTAPI_")}
    env["TTAPI_OUTPUT_DIR"] = out
    params = StdioServerParameters(command=command, args=args, env=env, cwd=out)
    log_path = os.path.join(out, "server-stderr.log")
    try:
        with open(log_path, "w") as errlog, anyio.fail_after(120):
            async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:
                tools = await client.list_tools()
                answer = await client.call_tool("generate_image", {"prompt": "x"})
    except BaseException:
        with open(log_path) as log:
            print(log.read(), file=sys.stderr)  # the server's own account of what went wrong
        raise
    text = answer.content[0].text if answer.content else ""
    if not answer.is_error or "ttapi-mcp install" not in text:
        raise SystemExit(f"expected the no-key explanation, got: {text[:200]}")
    return {tool.name for tool in tools.tools}


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    names = anyio.run(list_tools, sys.argv[1], sys.argv[2:])
    print(f"tools/list over stdio from {' '.join(sys.argv[1:])}: {', '.join(sorted(names))}")
    return 0 if names >= EXPECTED else 1


if __name__ == "__main__":
    sys.exit(main())
