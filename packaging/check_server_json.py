"""Validate packaging/server.json against the MCP Registry's published schema (kept here).

Also checks what a schema cannot: the versions match the package's, the README carries
the `mcp-name:` line the registry looks for on PyPI, and every environment variable is
a real setting, marked secret exactly when the setting is a secret. Exit 0 when valid.

    python packaging/check_server_json.py [SERVER_JSON]
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCHEMA = HERE / "schemas" / "server.schema.2025-12-11.json"
SCHEMA_SHA256 = "d4c163f299ece68b7432f4e44c4108f2fdb663d99dc088c8344142e5b0a4b520"
SCHEMA_URL = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"


def problems(entry: dict, readme: str, version: str, settings: dict[str, bool]) -> list[str]:
    """Everything wrong with ``entry``; ``settings`` maps env var names to 'is secret'."""
    import jsonschema

    schema_bytes = SCHEMA.read_bytes()
    if hashlib.sha256(schema_bytes).hexdigest() != SCHEMA_SHA256:
        return [f"{SCHEMA.name} differs from the copy noted in schemas/SOURCE.md"]
    schema = json.loads(schema_bytes)
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    found = [f"schema: {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
             for e in sorted(validator.iter_errors(entry), key=lambda e: list(e.path))]
    if entry.get("$schema") != SCHEMA_URL:
        found.append(f"$schema must be {SCHEMA_URL}")
    if entry.get("version") != version:
        found.append(f"version {entry.get('version')!r} is not the package's {version!r}")
    if f"mcp-name: {entry.get('name')}" not in readme:
        found.append(f"README.md lacks the line 'mcp-name: {entry.get('name')}'")
    for package in entry.get("packages", []):
        if package.get("version") != version:
            found.append(f"package version {package.get('version')!r} is not {version!r}")
        if package.get("registryType") == "pypi" and package.get("runtimeHint") != "uvx":
            found.append("the PyPI package should have runtimeHint 'uvx'")
        for variable in package.get("environmentVariables", []):
            name = variable.get("name")
            if name not in settings:
                found.append(f"environment variable {name} is not a ttapi-mcp setting")
            elif bool(variable.get("isSecret")) != settings[name]:
                found.append(f"{name}: isSecret must be {str(settings[name]).lower()}")
    return found


def main() -> int:
    sys.path.insert(0, str(HERE.parent))
    from ttapi_mcp import __version__
    from ttapi_mcp.config import ENV_PREFIX, SECRET_KEYS, Settings

    path = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "server.json"
    entry = json.loads(path.read_text(encoding="utf-8"))
    readme = (HERE.parent / "README.md").read_text(encoding="utf-8")
    settings = {ENV_PREFIX + key.upper(): key in SECRET_KEYS for key in Settings.model_fields}
    found = problems(entry, readme, __version__, settings)
    for problem in found:
        print(f"{path}: {problem}", file=sys.stderr)
    if not found:
        names = [v["name"] for p in entry["packages"] for v in p["environmentVariables"]]
        print(f"{path}: valid against {SCHEMA.name} ({entry['name']} {entry['version']}; "
              f"env: {', '.join(names)})")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
