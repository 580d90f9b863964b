"""Configuration as people type it: stray white space trimmed, unusable keys refused.

Keys come from `.env` files (a trailing newline), web pages (a non-breaking space, curly
quotes) and README examples (`your-key`). Each layer (file, environment, flag) trims
values; a key that still cannot be a header stops the program with exit 2, naming where
it came from and what is wrong, and never showing it in any form.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from ttapi_mcp.config import ConfigError, Settings, load_settings
from ttapi_mcp.keycheck import header_problem, is_placeholder, secret_forms
from ttapi_mcp.logs import RedactSecrets

REPO = Path(__file__).resolve().parents[1]
HEAD = f"sk-canary-{secrets.token_hex(8)}"
TAIL = secrets.token_hex(8)

BAD_KEYS = {
    "line break and a second header": f"{HEAD}\r\nX-Injected: {TAIL}",
    "bare newline inside": f"{HEAD}\n{TAIL}",
    "non-ASCII letter": f"{HEAD}\u00fc{TAIL}",
    "non-breaking space": f"{HEAD}\u00a0{TAIL}",
    "tab inside": f"{HEAD}\t{TAIL}",
    "space inside": f"{HEAD} {TAIL}",
    "curly quotes around": f"\u201c{HEAD}{TAIL}\u201d",
}
PROBLEM_WORDS = {
    "line break and a second header": "line break",
    "bare newline inside": "line break",
    "non-ASCII letter": "non-ASCII",
    "non-breaking space": "non-ASCII",
    "tab inside": "control character",
    "space inside": "space",
    "curly quotes around": "quotes",
}
PLACEHOLDERS = ["your-key", "your_key", "<your key>", "YOUR_API_KEY", " your-key\n", "..."]


def _leaked(text: str) -> list[str]:
    """Any part of a bad key, in any form, found in ``text``."""
    return [part for part in (HEAD, TAIL, "X-Injected") if part in text]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTAPI_")}
    env.update({"PYTHONPATH": str(REPO)}, **extra)
    return env


def test_values_are_trimmed_in_every_layer(tmp_path: Path) -> None:
    config = tmp_path / "c.json"
    config.write_text(json.dumps({
        "base_url": "  http://file.example \n", "input_roots": [" /pics\n"],
        "output_dir": "\tout \r\n"}), encoding="utf-8")
    settings = load_settings(config, env={"TTAPI_API_KEY": f"  {HEAD}\r\n",
                                          "TTAPI_PREVIEW": "none\n",
                                          "TTAPI_WAIT_BUDGET_SECONDS": " 12\n"})
    assert settings.api_key_value() == HEAD
    assert settings.base_url == "http://file.example"
    assert settings.output_dir == tmp_path / "out"
    assert settings.input_roots == [Path("/pics")]
    assert settings.preview == "none" and settings.wait_budget_seconds == 12
    flagged = load_settings(env={}, overrides={"base_url": " http://flag\n",
                                               "http_bearer_token": f"\n{TAIL} "})
    assert flagged.base_url == "http://flag"
    assert flagged.http_bearer_token is not None
    assert flagged.http_bearer_token.get_secret_value() == TAIL


def test_variables_set_to_nothing_count_as_unset() -> None:
    """Clients substitute an empty optional field as an empty variable."""
    settings = load_settings(env={"TTAPI_API_KEY": " \n", "TTAPI_OUTPUT_DIR": "",
                                  "TTAPI_BASE_URL": "  "})
    assert settings.api_key is None and settings == load_settings(env={})


@pytest.mark.parametrize("kind", sorted(BAD_KEYS))
def test_unusable_key_is_refused_naming_its_source_never_its_value(
    kind: str, tmp_path: Path
) -> None:
    key = BAD_KEYS[kind]
    with pytest.raises(ConfigError) as from_env:
        load_settings(env={"TTAPI_API_KEY": key})
    text = str(from_env.value)
    assert "environment variable TTAPI_API_KEY" in text and PROBLEM_WORDS[kind] in text, text
    assert _leaked(text) == [] and _leaked(repr(from_env.value)) == []

    config = tmp_path / "c.json"
    config.write_text(json.dumps({"api_key": key}), encoding="utf-8")
    with pytest.raises(ConfigError) as from_file:
        load_settings(config, env={})
    assert f"config file {config}" in str(from_file.value)
    assert _leaked(str(from_file.value)) == []

    with pytest.raises(ConfigError) as from_flag:
        load_settings(env={}, overrides={"http_bearer_token": key})
    assert "command-line flag --http-bearer-token" in str(from_flag.value)
    assert _leaked(str(from_flag.value)) == []


@pytest.mark.parametrize("placeholder", PLACEHOLDERS)
def test_placeholder_keys_are_refused(placeholder: str) -> None:
    assert is_placeholder(placeholder)
    with pytest.raises(ConfigError, match="placeholder"):
        load_settings(env={"TTAPI_API_KEY": placeholder})


def test_real_looking_keys_pass() -> None:
    for key in ("sk-abc123", "3f1c9a2e-7b4d-4e8f-9a01-23456789abcd", HEAD, "yourkeyisthis1"):
        assert header_problem(key) is None, key


def test_settings_built_directly_refuse_and_never_print_the_key() -> None:
    """Outside load_settings a pydantic error would print its input: it must not."""
    for key in BAD_KEYS.values():
        with pytest.raises(ValidationError) as info:
            Settings(api_key=SecretStr(key))
        assert _leaked(str(info.value)) == [] and _leaked(repr(info.value)) == []


def test_log_filter_scrubs_escaped_forms() -> None:
    import logging

    key = f"{HEAD}\\{TAIL}\""
    record = logging.LogRecord("t", logging.INFO, __file__, 1,
                               "a %s b %r c %s", (key, key, json.dumps(key)), None)
    RedactSecrets([key]).filter(record)
    assert _leaked(record.getMessage()) == [], record.getMessage()
    assert len(secret_forms(key)) >= 3


@pytest.mark.parametrize("kind", ["line break and a second header", "non-ASCII letter"])
def test_serve_and_doctor_stop_with_exit_2_and_1_without_echo(kind: str, tmp_path: Path) -> None:
    env = _env(TTAPI_API_KEY=BAD_KEYS[kind], TTAPI_OUTPUT_DIR=str(tmp_path / "out"))
    served = subprocess.run([sys.executable, "-m", "ttapi_mcp", "serve"], env=env, input="",
                            capture_output=True, text=True, timeout=60, cwd="/")
    assert served.returncode == 2, served.stderr
    assert "TTAPI_API_KEY" in served.stderr and PROBLEM_WORDS[kind] in served.stderr
    assert "Traceback" not in served.stderr and served.stdout == ""
    doctor = subprocess.run([sys.executable, "-m", "ttapi_mcp", "doctor", "--json"], env=env,
                            capture_output=True, text=True, timeout=60, cwd="/")
    assert doctor.returncode == 1
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["configuration"]["status"] == "FAIL"
    assert "TTAPI_API_KEY" in checks["configuration"]["detail"]
    for output in (served.stdout, served.stderr, doctor.stdout, doctor.stderr):
        assert _leaked(output) == []
    assert not any(tmp_path.rglob("*")) or _leaked_files(tmp_path) == []


def _leaked_files(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file()
            and _leaked(p.read_bytes().decode("utf-8", "replace"))]


def test_placeholder_from_the_readme_stops_serve(tmp_path: Path) -> None:
    env = _env(TTAPI_API_KEY="your-key", TTAPI_OUTPUT_DIR=str(tmp_path / "out"))
    served = subprocess.run([sys.executable, "-m", "ttapi_mcp", "serve"], env=env, input="",
                            capture_output=True, text=True, timeout=60, cwd="/")
    assert served.returncode == 2
    assert "placeholder" in served.stderr and "TTAPI_API_KEY" in served.stderr


def test_the_api_client_refuses_an_unsendable_key_without_showing_it() -> None:
    from ttapi_mcp.api import TTAPIClient

    for key in (BAD_KEYS["line break and a second header"], BAD_KEYS["non-ASCII letter"]):
        with pytest.raises(ValueError) as info:
            TTAPIClient("http://127.0.0.1:9", key)
        assert _leaked(str(info.value)) == [] and "TTAPI key" in str(info.value)
    TTAPIClient("http://127.0.0.1:9", f" {HEAD}\n")  # trimmed, accepted
