"""Operations: /healthz and /readyz, JSON logs with request and job ids, doctor's issuer check.

Probes are exercised on the real HTTP app (plain, behind the static token and behind
OAuth, where they need no credentials); the JSON logs on a real ``ttapi-mcp serve
--transport http`` process; doctor against the loopback issuer.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from conftest import CANARY_KEY, make_server_settings, serve_http
from httpproc import free_port, serve_process
from oauth_issuer import LoopbackIssuer
from pydantic import SecretStr

from ttapi_mcp.config import load_settings
from ttapi_mcp.doctor import run_checks
from ttapi_mcp.emulator import Emulator, EmulatorServer

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "ops-static-token-5c1d9e"


@pytest.fixture(scope="module")
def emulator_server() -> Iterator[EmulatorServer]:
    """This module's own emulator: its request log must hold only this module's calls."""
    with EmulatorServer(Emulator(), host="127.0.0.1", port=0) as server:
        yield server


def _probe(origin: str, path: str) -> httpx2.Response:
    return httpx2.get(f"{origin}{path}", timeout=15)


@pytest.mark.parametrize("guard", ["none", "static token", "oauth"])
def test_probes_answer_without_credentials_and_reveal_nothing(
    emulator: Emulator, tmp_path: Path, guard: str
) -> None:
    with LoopbackIssuer() as issuer:
        extra: dict[str, Any] = {}
        if guard == "static token":
            extra["http_bearer_token"] = SecretStr(TOKEN)
        if guard == "oauth":
            extra["oauth_issuer"] = issuer.issuer
        settings = make_server_settings(emulator.base_url, tmp_path, **extra)
        with serve_http(settings, public=True) as origin:
            health = _probe(origin, "/healthz")
            ready = _probe(origin, "/readyz")
            guarded = httpx2.get(f"{origin}/mcp", timeout=10)
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "storage": "ok"}}
    assert health.headers["cache-control"] == "no-store"
    for answer in (health, ready):
        assert str(tmp_path) not in answer.text and CANARY_KEY not in answer.text
        assert len(answer.headers["x-request-id"]) >= 8
    if guard != "none":
        assert guarded.status_code == 401
    assert issuer.requests == []  # probes never ask the issuer
    assert emulator.api_requests() == []


def test_readiness_fails_when_the_image_folder_cannot_take_files(
    emulator: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_server_settings(emulator.base_url, tmp_path)
    with serve_http(settings) as origin:
        assert _probe(origin, "/readyz").status_code == 200
        shutil.rmtree(settings.output_dir)
        settings.output_dir.write_bytes(b"a file where the folder was")
        broken = _probe(origin, "/readyz")
        health = _probe(origin, "/healthz")
        settings.output_dir.unlink()
        settings.output_dir.mkdir()
        repaired = _probe(origin, "/readyz")
    assert broken.status_code == 503
    assert broken.json() == {"status": "unavailable",
                             "checks": {"database": "ok", "storage": "failed"}}
    assert str(settings.output_dir) not in broken.text
    assert health.status_code == 200  # alive, only not ready
    assert repaired.status_code == 200
    assert "readiness check storage failed" in caplog.text


def test_a_request_id_is_echoed_when_sane_and_replaced_when_not(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = make_server_settings(emulator.base_url, tmp_path)
    with serve_http(settings) as origin:
        kept = httpx2.get(f"{origin}/healthz", headers={"X-Request-Id": "lb-7f3a.1"}, timeout=10)
        bad = httpx2.get(f"{origin}/healthz", headers={"X-Request-Id": "a b\"c" + "x" * 80},
                         timeout=10)
    assert kept.headers["x-request-id"] == "lb-7f3a.1"
    assert bad.headers["x-request-id"] != "" and " " not in bad.headers["x-request-id"]
    assert len(bad.headers["x-request-id"]) == 16


# -- JSON logs -------------------------------------------------------------------------------


def server_env(emulator: Emulator, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTAPI_")}
    env.update({"PYTHONPATH": str(ROOT), "TTAPI_BASE_URL": str(emulator.base_url),
                "TTAPI_API_KEY": CANARY_KEY, "TTAPI_OUTPUT_DIR": str(tmp_path / "out"),
                "TTAPI_DATABASE_PATH": str(tmp_path / "db.sqlite3"),
                "TTAPI_LOG_FORMAT": "json", "TTAPI_LOG_LEVEL": "INFO"})
    env.update(extra)
    return env


@pytest.mark.anyio
async def test_json_logs_carry_request_and_job_ids(emulator: Emulator, tmp_path: Path) -> None:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    log = tmp_path / "stderr.log"
    with serve_process(server_env(emulator, tmp_path), free_port(), log) as origin:
        async with (
            httpx2.AsyncClient(headers={"X-Request-Id": "call-0001"}) as http,
            Client(streamable_http_client(f"{origin}/mcp", http_client=http),
                   mode="legacy") as client,
        ):
            result = await client.call_tool("generate_image", {
                "prompt": "a logged lark", "model": "dall-e-2", "size": "256x256"})
    assert not result.is_error, result.content
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= e.keys() for e in entries)
    assert all(e["time"].endswith("Z") for e in entries)
    job_id = result.structured_content["job_id"]
    in_job = [e for e in entries if e.get("job_id") == job_id]
    assert in_job, lines
    assert all(e.get("request_id") == "call-0001" for e in in_job)
    assert any("answered in" in e["message"] for e in in_job)
    assert CANARY_KEY not in log.read_text()


# -- doctor ----------------------------------------------------------------------------------


def _doctor_env(emulator: Emulator, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = server_env(emulator, tmp_path, TTAPI_PUBLIC_BASE_URL="https://images.example.com")
    env.update(extra)
    return env


@pytest.mark.anyio
async def test_doctor_checks_the_issuer(emulator: Emulator, tmp_path: Path) -> None:
    with LoopbackIssuer() as issuer:
        env = _doctor_env(emulator, tmp_path, TTAPI_OAUTH_ISSUER=issuer.issuer)
        checks = await run_checks(lambda o: load_settings(env=env, origins=o))
    found = {c.name: c for c in checks}["sign-in issuer"]
    assert found.status == "OK", found
    assert "1 signing key" in found.detail and "https://images.example.com/mcp" in found.detail
    assert "environment variable TTAPI_OAUTH_ISSUER" in found.detail


@pytest.mark.anyio
@pytest.mark.parametrize("case", ["down", "impostor", "no public url", "with static token"])
async def test_doctor_explains_a_broken_issuer(
    emulator: Emulator, tmp_path: Path, case: str
) -> None:
    with LoopbackIssuer() as issuer:
        extra = {"TTAPI_OAUTH_ISSUER": issuer.issuer}
        if case == "impostor":
            issuer.issuer = "http://127.0.0.1:9"
        env = _doctor_env(emulator, tmp_path, **extra)
        if case == "no public url":
            del env["TTAPI_PUBLIC_BASE_URL"]
        if case == "with static token":
            env["TTAPI_HTTP_BEARER_TOKEN"] = TOKEN
        if case != "down":
            checks = await run_checks(lambda o: load_settings(env=env, origins=o))
    if case == "down":
        checks = await run_checks(lambda o: load_settings(env=env, origins=o))
    found = {c.name: c for c in checks}["sign-in issuer"]
    assert found.status == "FAIL", found
    words = {"down": "no discovery document", "impostor": "RFC 8414",
             "no public url": "public_base_url", "with static token": "http_bearer_token"}
    assert words[case] in found.detail, found
    assert TOKEN not in found.detail + found.advice


@pytest.mark.anyio
async def test_doctor_says_nothing_of_sign_in_when_it_is_not_configured(
    emulator: Emulator, tmp_path: Path
) -> None:
    env = server_env(emulator, tmp_path)
    checks = await run_checks(lambda o: load_settings(env=env, origins=o))
    assert "sign-in issuer" not in {c.name for c in checks}
