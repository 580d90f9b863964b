"""Settings layering, error reporting and secret hygiene."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ttapi_mcp.config import (
    ConfigError,
    Settings,
    load_settings,
    mask_secret,
    settings_as_dict,
)

CANARY = "sk-canary-7f3e9a1b2c4d5e6f"
REPO = Path(__file__).resolve().parents[1]


def write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_defaults_are_absolute_and_not_the_working_directory() -> None:
    settings = load_settings(env={})
    assert settings.output_dir.is_absolute()
    assert settings.output_dir != Path.cwd()
    assert settings.store_path.is_absolute()
    assert settings.base_url == "https://api.ttapi.io"
    assert settings.wait_budget_seconds == 50.0
    assert settings.api_key is None


def test_precedence_file_then_environment_then_flags(tmp_path: Path) -> None:
    config = write(tmp_path / "c.json", {"base_url": "http://file", "preview": "none",
                                         "wait_budget_seconds": 10})
    env = {"TTAPI_BASE_URL": "http://env", "TTAPI_PREVIEW": "full"}
    settings = load_settings(config, env=env, overrides={"preview": "thumbnail"})
    assert settings.base_url == "http://env"
    assert settings.preview == "thumbnail"
    assert settings.wait_budget_seconds == 10


def test_config_file_from_environment_variable(tmp_path: Path) -> None:
    config = write(tmp_path / "c.json", {"http_port": 9123, "_comment": "ignored"})
    settings = load_settings(env={"TTAPI_MCP_CONFIG": str(config)})
    assert settings.http_port == 9123


def test_every_key_has_an_environment_variable() -> None:
    env = {"TTAPI_ALLOW_PRIVATE_URLS": "true", "TTAPI_RETRY_MAX_ATTEMPTS": "5",
           "TTAPI_INPUT_ROOTS": os.pathsep.join(["/a", "/b"]), "TTAPI_API_KEY": CANARY}
    settings = load_settings(env=env)
    assert settings.allow_private_urls is True
    assert settings.retry_max_attempts == 5
    assert settings.input_roots == [Path("/a"), Path("/b")]
    assert settings.api_key_value() == CANARY


def test_relative_paths_in_a_file_are_relative_to_the_file(tmp_path: Path) -> None:
    config = write(tmp_path / "c.json", {"output_dir": "out", "input_roots": ["pics"]})
    settings = load_settings(config, env={})
    assert settings.output_dir == tmp_path / "out"
    assert settings.input_roots == [tmp_path / "pics"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ({"bogus_key": 1}, "unknown key 'bogus_key'"),
        ({"http_port": "eighty"}, "http_port"),
        ({"preview": "huge"}, "preview"),
        ({"retry_max_attempts": 0}, "retry_max_attempts"),
    ],
)
def test_bad_values_name_the_key_and_the_file(tmp_path: Path, content: dict, expected: str) -> None:
    config = write(tmp_path / "bad.json", content)
    with pytest.raises(ConfigError) as info:
        load_settings(config, env={})
    assert expected in str(info.value)
    assert str(config) in str(info.value)


def test_invalid_json_and_missing_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_settings(broken, env={})
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.json", env={})


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="TTAPI_WAIT_BUDGET_SECONDS"):
        load_settings(env={"TTAPI_WAIT_BUDGET_SECONDS": "soon"})


def test_secret_never_in_repr_or_errors(tmp_path: Path) -> None:
    settings = load_settings(env={"TTAPI_API_KEY": CANARY})
    assert CANARY not in repr(settings)
    assert CANARY not in str(settings)
    assert CANARY not in json.dumps(settings_as_dict(settings))
    config = write(tmp_path / "c.json", {"api_key": 12345, "http_bearer_token": ["x"]})
    with pytest.raises(ConfigError) as info:
        load_settings(config, env={})
    assert "12345" not in str(info.value)
    assert "api_key" in str(info.value)


def test_mask_secret_shows_only_a_tail() -> None:
    assert mask_secret(CANARY) == "****" + CANARY[-4:]
    assert mask_secret("short") == "****"
    assert mask_secret(None) == "(not set)"


def test_output_dir_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    settings = load_settings(env={"TTAPI_OUTPUT_DIR": str(blocker / "sub")})
    with pytest.raises(ConfigError, match="output_dir"):
        settings.prepare_dirs()


def test_example_config_lists_every_key_with_its_default() -> None:
    example = json.loads((REPO / "config.example.json").read_text(encoding="utf-8"))
    for name, field in Settings.model_fields.items():
        assert name in example, name
        assert f"_{name}" in example, f"no comment for {name}"
        if field.default_factory is None and name not in ("api_key", "http_bearer_token"):
            assert example[name] == field.default, name
    assert load_settings(REPO / "config.example.json", env={}) == load_settings(env={})


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TTAPI_")}
    full_env.update(env or {})
    full_env["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-m", "ttapi_mcp", *args], capture_output=True,
                          text=True, env=full_env, timeout=60, check=False)


def test_cli_bad_configuration_exits_2_without_traceback(tmp_path: Path) -> None:
    config = write(tmp_path / "bad.json", {"nonsense": True, "api_key": CANARY})
    result = run_cli("serve", "--config", str(config))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "nonsense" in result.stderr and str(config) in result.stderr
    assert CANARY not in result.stderr + result.stdout


def test_cli_bad_set_flag_exits_2(tmp_path: Path) -> None:
    result = run_cli("serve", "--set", "wait_budget_seconds=-5",
                     env={"TTAPI_OUTPUT_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert "--wait-budget-seconds" in result.stderr


def test_cli_help_and_version() -> None:
    helped = run_cli("--help", env={"TTAPI_API_KEY": CANARY})
    assert helped.returncode == 0
    assert "examples:" in helped.stdout and "demo" in helped.stdout
    assert CANARY not in helped.stdout
    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("ttapi-mcp ")
