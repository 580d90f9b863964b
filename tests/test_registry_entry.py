"""packaging/server.json, the MCP Registry entry, against the registry's published schema.

The schema copy lives in packaging/schemas/ (its source is noted there). The checker must
also refuse entries that break the schema or drift from the package (a wrong version, an
unknown or wrongly-secret variable), so each of those is tried too.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ttapi_mcp import __version__
from ttapi_mcp.config import ENV_PREFIX, SECRET_KEYS, Settings

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "packaging"))
from check_server_json import problems  # noqa: E402

ENTRY = json.loads((REPO / "packaging" / "server.json").read_text(encoding="utf-8"))
README = (REPO / "README.md").read_text(encoding="utf-8")
SETTINGS = {ENV_PREFIX + key.upper(): key in SECRET_KEYS for key in Settings.model_fields}


def test_the_entry_is_valid_and_matches_the_package() -> None:
    assert problems(ENTRY, README, __version__, SETTINGS) == []
    (package,) = ENTRY["packages"]
    assert package["identifier"] == "ttapi-mcp" and package["registryType"] == "pypi"
    assert package["transport"] == {"type": "stdio"} and package["runtimeHint"] == "uvx"
    secret = [v["name"] for v in package["environmentVariables"] if v.get("isSecret")]
    assert secret == ["TTAPI_API_KEY"]


def test_the_checker_script_passes_in_a_subprocess() -> None:
    done = subprocess.run([sys.executable, str(REPO / "packaging" / "check_server_json.py")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "valid against server.schema.2025-12-11.json" in done.stdout


def _broken(change: Any) -> dict[str, Any]:
    entry = copy.deepcopy(ENTRY)
    change(entry)
    return entry


@pytest.mark.parametrize(("change", "expected"), [
    (lambda e: e.pop("description"), "'description' is a required property"),
    (lambda e: e.update(name="no slash here"), "does not match"),
    (lambda e: e.update(description="x" * 101), "is too long"),
    (lambda e: e["packages"][0].update(version="latest"), "should not be valid"),
    (lambda e: e["packages"][0].pop("transport"), "'transport' is a required property"),
    (lambda e: e.update(version="9.9.9"), "is not the package's"),
    (lambda e: e["packages"][0]["environmentVariables"][0].update(isSecret=False),
     "isSecret must be true"),
    (lambda e: e["packages"][0]["environmentVariables"].append({"name": "TTAPI_NOPE"}),
     "not a ttapi-mcp setting"),
])
def test_the_checker_refuses_a_broken_entry(change: Any, expected: str) -> None:
    found = problems(_broken(change), README, __version__, SETTINGS)
    assert any(expected in problem for problem in found), found


def test_the_readme_must_carry_the_mcp_name_line() -> None:
    found = problems(ENTRY, README.replace("mcp-name:", "mcp name"), __version__, SETTINGS)
    assert any("mcp-name" in problem for problem in found)
