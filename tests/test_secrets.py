"""Secret hygiene: a canary key appears nowhere the product writes or answers.

The key is random per run, so no fixture or constant elsewhere can mask a leak. A real
stdio server is driven through every tool (successes and failures, including upstream
errors that echo the key), every resource and every prompt; then its stderr at DEBUG,
its database (with WAL) and every file it wrote are searched. The CLI's help and doctor
output are searched too; doctor must show the key masked. The key is given as people paste
it (spaces and a line break around it); tests/test_config_as_typed.py covers keys that
cannot be used at all.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import make_server_settings, mcp_client
from pydantic import SecretStr

from ttapi_mcp.config import mask_secret
from ttapi_mcp.emulator import Emulator, Fault

ROOT = Path(__file__).resolve().parents[1]
CANARY = f"sk-canary-{secrets.token_hex(12)}"


def _env(emulator: Emulator, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTAPI_")}
    env.update({
        "PYTHONPATH": str(ROOT), "TTAPI_BASE_URL": str(emulator.base_url),
        # As pasted from a .env file: spaces around, CRLF after; trimmed at start.
        "TTAPI_API_KEY": f"  {CANARY} \r\n", "TTAPI_OUTPUT_DIR": str(tmp_path / "out"),
        "TTAPI_DATABASE_PATH": str(tmp_path / "db" / "store.sqlite3"),
        "TTAPI_LOG_LEVEL": "DEBUG", "TTAPI_POLL_FIRST_DELAY": "0.05",
        "TTAPI_POLL_INTERVAL": "0.05", "TTAPI_RETRY_BASE_DELAY": "0.01",
        "TTAPI_RETRY_MAX_DELAY": "0.05", "TTAPI_WAIT_BUDGET_SECONDS": "10",
    })
    return env


def _files_containing_canary(root: Path) -> list[str]:
    needle = CANARY.encode()
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def _echo_faults(status: int = 400) -> list[Fault]:
    """Upstream errors whose message and code repeat the key, on every route we call."""
    return [Fault(route=route, status=status, message=f"bad key {CANARY}", code=CANARY)  # type: ignore[arg-type]
            for route in ("E1", "E2", "E4", "E5")]


async def _drive(client: Any, emulator: Emulator, seen: list[str]) -> dict[str, Any]:
    """Every tool, resource and prompt; each answer's full JSON is appended to ``seen``."""

    async def call(name: str, args: dict[str, Any]) -> Any:
        result = await client.call_tool(name, args)
        seen.append(result.model_dump_json())
        return result

    # Successes: base64 and URL results, an edit of a saved image, a 4o job waited and fetched.
    url_image = await call("generate_image", {"prompt": "a lamp", "model": "dall-e-2",
                                              "size": "256x256"})
    b64_image = await call("generate_image", {"prompt": "a kite", "model": "gpt-image-1",
                                              "size": "1024x1024", "quality": "low"})
    assert not url_image.is_error, url_image.content
    assert not b64_image.is_error, b64_image.content
    uri = b64_image.structured_content["images"][0]["uri"]
    edited = await call("edit_image", {"prompt": "make it blue", "images": [uri],
                                       "model": "gpt-image-1", "size": "1024x1024"})
    assert not edited.is_error, edited.content
    waited = await call("gpt4o_image", {"prompt": "draw a boat"})
    assert waited.structured_content["status"] == "completed", waited.content
    pending = await call("gpt4o_image", {"prompt": "draw a bridge", "wait": False})
    job_id = pending.structured_content["job_id"]
    assert (await call("fetch_job", {"job_id": job_id})).structured_content["job_id"] == job_id
    gpt_job = await call("gpt4o_image", {"prompt": "draw a tower", "model": "gpt-image-2",
                                         "aspect_ratio": "16:9"})
    assert gpt_job.structured_content["status"] == "completed", gpt_job.content
    assert (await call("generate_image", {"prompt": "x", "sizee": "1536x1024"})).is_error
    streamed = await call("generate_image", {"prompt": "a stream", "model": "gpt-image-1",
                                             "quality": "low", "partial_images": 2})
    assert not streamed.is_error, streamed.content

    # Upstream errors that echo the key, then a key the emulator refuses (401).
    for fault in _echo_faults():
        emulator.add_fault(fault)
    failures = [
        await call("generate_image", {"prompt": "x", "model": "gpt-image-1", "quality": "low"}),
        await call("edit_image", {"prompt": "x", "images": [uri], "model": "gpt-image-1"}),
        await call("gpt4o_image", {"prompt": "draw x"}),
    ]
    slow = await call("gpt4o_image", {"prompt": "draw y", "wait": False})
    emulator.add_fault(_echo_faults(500)[3])
    failures.append(await call("fetch_job", {"job_id": slow.structured_content["job_id"]}))
    emulator.add_fault(Fault(route="download", status=403, message=f"expired {CANARY}"))
    failures.append(await call("generate_image", {"prompt": "x", "model": "dall-e-2",
                                                  "size": "256x256"}))
    emulator.options.api_keys = ["other"]
    failures += [
        await call("generate_image", {"prompt": "x", "model": "dall-e-2", "size": "256x256"}),
        await call("edit_image", {"prompt": "x", "images": [uri], "model": "gpt-image-1"}),
        await call("gpt4o_image", {"prompt": "draw z"}),
        await call("fetch_job", {"job_id": slow.structured_content["job_id"]}),
        await call("fetch_job", {"job_id": "00000000-0000-0000-0000-000000000000"}),
    ]
    emulator.options.api_keys = []
    refused = [r.status for r in emulator.log if r.status == 401]
    assert len(refused) >= 4, "the 401 path was not exercised"
    for result in failures:
        assert result.is_error or result.structured_content.get("status") != "completed", result

    # Resources (every page, every image and job) and prompts.
    cursor, resources = None, []
    for _ in range(50):
        page = await client.list_resources(cursor=cursor) if cursor else \
            await client.list_resources()
        seen.append(page.model_dump_json())
        resources += [str(r.uri) for r in page.resources]
        cursor = page.next_cursor
        if not cursor:
            break
    seen.append((await client.list_resource_templates()).model_dump_json())
    uris = {*resources, "ttapi://models", "ttapi://usage", f"ttapi://jobs/{job_id}",
            f"ttapi://jobs/{slow.structured_content['job_id']}"}
    uris.add(f"ttapi://partials/{streamed.structured_content['job_id']}.0.1")
    for resource in sorted(uris):
        seen.append((await client.read_resource(resource)).model_dump_json())
    try:  # the key is refused by now: the account's error must not carry it either
        seen.append((await client.read_resource("ttapi://account")).model_dump_json())
    except Exception as exc:  # the client raises the resource error
        seen.append(repr(exc))
        assert "401" in str(exc) or "key" in str(exc).lower(), exc
    prompts = await client.list_prompts()
    seen.append(prompts.model_dump_json())
    for prompt in prompts.prompts:
        args = {a.name: f"value for {a.name}" for a in prompt.arguments or []}
        seen.append((await client.get_prompt(prompt.name, args)).model_dump_json())
    # The app's page and its tools (what a host that renders Apps reads and calls).
    image_id = b64_image.structured_content["images"][0]["id"]
    seen.append((await client.read_resource("ui://ttapi-mcp/viewer.html")).model_dump_json())
    for name, args in (("app_images", {"image_ids": [image_id]}),
                       ("app_images", {"image_ids": [image_id], "size": "full"}),
                       ("app_gallery", {}), ("app_gallery", {"query": CANARY}),
                       ("app_partials", {"job_id": streamed.structured_content["job_id"]}),
                       ("show_gallery", {})):
        assert not (await call(name, args)).is_error, name
    return {"resources": resources, "prompts": [p.name for p in prompts.prompts]}


@pytest.mark.anyio
async def test_canary_key_never_leaves_a_real_stdio_server(
    emulator: Emulator, tmp_path: Path
) -> None:
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    emulator.options.job_seconds = 0.2
    params = StdioServerParameters(command=sys.executable, args=["-m", "ttapi_mcp", "serve"],
                                   env=_env(emulator, tmp_path), cwd="/")
    seen: list[str] = []

    async def on_message(message: Any) -> None:
        seen.append(repr(message))  # notifications: progress, logging, list changes

    async def on_log(params: Any) -> None:
        seen.append(repr(params))

    stderr_log = tmp_path / "stderr.log"
    with open(stderr_log, "w") as errlog, anyio.fail_after(90):
        async with Client(stdio_client(params, errlog=errlog), message_handler=on_message,
                          logging_callback=on_log, log_level="debug") as client:
            found = await _drive(client, emulator, seen)
            wal = tmp_path / "db" / "store.sqlite3-wal"
            assert wal.exists(), "the WAL should be searched while the server holds it"
            leaks_while_running = _files_containing_canary(tmp_path)
    stderr = stderr_log.read_text(errors="replace")

    assert emulator.api_requests(), "nothing reached the emulator"
    assert len(found["resources"]) >= 4 and len(found["prompts"]) >= 1
    assert " DEBUG " in stderr and " WARNING " in stderr, "logs at every level were captured"
    assert CANARY not in "\n".join(seen)
    assert "bad key [redacted]" in "\n".join(seen), "the upstream echo was not exercised"
    assert CANARY not in stderr
    assert leaks_while_running == []
    assert _files_containing_canary(tmp_path) == []
    assert any((tmp_path / "out").glob("*.png")) and (tmp_path / "db" / "store.sqlite3").exists()


@pytest.mark.anyio
async def test_canary_key_is_not_logged_at_the_source(
    emulator: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The stderr filter is a second line of defence: no record should carry the key at all."""
    settings = make_server_settings(emulator.base_url, tmp_path, api_key=SecretStr(CANARY))
    caplog.set_level(logging.DEBUG)
    for fault in _echo_faults() + _echo_faults(502):
        emulator.add_fault(fault)
    with anyio.fail_after(60):
        async with mcp_client(settings) as client:
            for _ in range(2):
                await client.call_tool("generate_image", {"prompt": "x", "model": "dall-e-2",
                                                          "size": "256x256"})
                await client.call_tool("gpt4o_image", {"prompt": "draw x"})
            emulator.options.api_keys = ["other"]
            await client.call_tool("generate_image", {"prompt": "x", "model": "dall-e-2",
                                                      "size": "256x256"})
    assert any(r.levelno == logging.DEBUG for r in caplog.records)
    assert CANARY not in caplog.text


def _cli(*args: str, tmp_path: Path, emulator: Emulator) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ttapi_mcp", *args],
                          env=_env(emulator, tmp_path), capture_output=True, text=True,
                          timeout=60, cwd="/")


def test_help_and_doctor_never_show_the_key(emulator: Emulator, tmp_path: Path) -> None:
    for args in (["--help"], ["serve", "--help"], ["doctor", "--help"], ["--version"],
                 ["usage"], ["usage", "--json", "--by", "day"]):
        result = _cli(*args, tmp_path=tmp_path, emulator=emulator)
        assert result.returncode == 0, result.stderr
        assert CANARY not in result.stdout + result.stderr
    for args in (["doctor"], ["doctor", "--json"], ["doctor", "--fix"]):
        result = _cli(*args, tmp_path=tmp_path, emulator=emulator)
        assert result.returncode == 0, result.stdout + result.stderr
        assert CANARY not in result.stdout + result.stderr
        assert mask_secret(CANARY) in result.stdout and mask_secret(CANARY) != CANARY
    assert _files_containing_canary(tmp_path) == []


@pytest.mark.anyio
async def test_neither_the_key_nor_access_tokens_leave_a_signed_in_http_server(
    emulator: Emulator, tmp_path: Path
) -> None:
    """OAuth mode, JSON logs at DEBUG: probes, metadata, refused and accepted tokens, a
    call whose upstream error echoes the key. The key and every token stay out of the
    answers, the log and the files."""
    import httpx2
    from httpproc import free_port, serve_process
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from oauth_issuer import LoopbackIssuer

    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    answers: list[str] = []
    with LoopbackIssuer() as issuer:
        good = issuer.token(f"{origin}/mcp")
        tokens = [good, issuer.token(f"{origin}/mcp", scope="images:read"),
                  issuer.token(f"{origin}/mcp", expires_in=-300),
                  issuer.token("http://127.0.0.1:9/mcp")]
        env = {**_env(emulator, tmp_path), "TTAPI_LOG_FORMAT": "json",
               "TTAPI_OAUTH_ISSUER": issuer.issuer, "TTAPI_PUBLIC_BASE_URL": origin}
        log = tmp_path / "stderr.log"
        with serve_process(env, port, log):
            for path in ("/healthz", "/readyz", "/.well-known/oauth-protected-resource/mcp"):
                answers.append(httpx2.get(origin + path, timeout=10).text)
            for token in tokens:
                answer = httpx2.post(f"{origin}/mcp", timeout=10, json={
                    "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
                        "name": "generate_image", "arguments": {"prompt": "x"}}},
                    headers={"Authorization": f"Bearer {token}",
                             "Accept": "application/json, text/event-stream"})
                answers.append(json.dumps(dict(answer.headers)) + answer.text)
            for fault in _echo_faults():
                emulator.add_fault(fault)
            async with (
                httpx2.AsyncClient(headers={"Authorization": f"Bearer {good}"}) as http,
                Client(streamable_http_client(f"{origin}/mcp", http_client=http)) as client,
            ):
                result = await client.call_tool("generate_image", {
                    "prompt": "x", "model": "dall-e-2", "size": "256x256"})
                answers.append(result.model_dump_json())
    assert result.is_error  # the upstream fault, told without the key
    stderr = log.read_text()
    assert any(json.loads(line)["level"] == "DEBUG" for line in stderr.splitlines() if line)
    for secret in (CANARY, *tokens):
        for text in (*answers, stderr):
            assert secret not in text


@pytest.mark.anyio
async def test_canary_key_never_reaches_another_server_through_the_shared_store(
    emulator: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """What one server writes for the others (owner, phase, errors, leases) holds no key,
    and what the other server answers from those rows holds none either."""
    settings = make_server_settings(emulator.base_url, tmp_path, api_key=SecretStr(CANARY),
                                    lease_seconds=1, lease_renew_seconds=0.2,
                                    store_poll_seconds=0.05)
    caplog.set_level(logging.DEBUG)
    emulator.options.latency_seconds = 1.0
    emulator.options.job_seconds = 1.0
    seen: list[str] = []
    with anyio.fail_after(60):
        async with mcp_client(settings) as a, mcp_client(settings) as b:
            local = await a.call_tool("generate_image", {"prompt": "x", "model": "dall-e-2",
                                                         "size": "256x256", "wait": False})
            job = await a.call_tool("gpt4o_image", {"prompt": "draw x", "wait": False})
            attached = await b.call_tool("gpt4o_image", {"prompt": "draw x", "wait": False})
            assert attached.structured_content["job_id"] == job.structured_content["job_id"]
            seen.append(str(attached.content) + str(attached.structured_content))
            emulator.add_fault(Fault(route="E5", status=400, message=f"bad key {CANARY}",
                                     code=CANARY))
            for submitted in (local, job):
                job_id = submitted.structured_content["job_id"]
                for client in (b, a):
                    result = await client.call_tool("fetch_job", {"job_id": job_id,
                                                                  "wait": True})
                    seen.append(str(result.content) + str(result.structured_content))
                    for uri in (f"ttapi://jobs/{job_id}", "ttapi://jobs"):
                        seen.append(str((await client.read_resource(uri)).contents))
    assert any("fetch" in s or "completed" in s for s in seen)
    assert not [s for s in seen if CANARY in s]
    assert CANARY not in caplog.text
    assert _files_containing_canary(tmp_path) == []


PG_PASSWORD = "pgpw-canary-3Kd8Zq"


@pytest.mark.anyio
async def test_the_database_password_never_leaves_a_server_on_postgresql(
    emulator: Emulator, tmp_path: Path, pg_cluster: Any
) -> None:
    """The throw-away cluster trusts loopback, so a URL with a password connects: the
    password travels through every path a real one would, and must show up nowhere."""
    from urllib.parse import urlsplit, urlunsplit

    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    parts = urlsplit(pg_cluster.new_schema_url())
    url = urlunsplit(parts._replace(netloc=f"postgres:{PG_PASSWORD}@{parts.hostname}:"
                                           f"{parts.port}"))
    env = {**_env(emulator, tmp_path), "TTAPI_DATABASE_URL": url}
    emulator.options.job_seconds = 0.2
    params = StdioServerParameters(command=sys.executable, args=["-m", "ttapi_mcp", "serve"],
                                   env=env, cwd="/")
    seen: list[str] = []

    async def on_log(params: Any) -> None:
        seen.append(repr(params))

    stderr_log = tmp_path / "stderr.log"
    with open(stderr_log, "w") as errlog, anyio.fail_after(90):
        async with Client(stdio_client(params, errlog=errlog), logging_callback=on_log,
                          log_level="debug") as client:
            await _drive(client, emulator, seen)
    outputs = [subprocess.run([sys.executable, "-m", "ttapi_mcp", *args], env=env,
                              capture_output=True, text=True, timeout=60, cwd="/")
               for args in (["doctor"], ["doctor", "--json"], ["usage"])]
    texts = [stderr_log.read_text(errors="replace"), "\n".join(seen),
             *(o.stdout + o.stderr for o in outputs)]
    assert "store" in outputs[0].stdout and "postgresql://postgres:***@" in outputs[0].stdout
    for text in texts:
        assert PG_PASSWORD not in text and CANARY not in text
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert PG_PASSWORD.encode() not in path.read_bytes(), path
