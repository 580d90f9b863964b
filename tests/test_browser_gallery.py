"""The browser gallery over real HTTP: the way in, the checks of /mcp, read-only calls.

Why: outside an MCP host the gallery is a web page on this machine. It must refuse other
Hosts and Origins like /mcp; where a bearer token guards the server (a browser cannot
send that header) or ``ttapi-mcp gallery`` serves it, nothing is given without a fresh
signed link; and it never runs a tool that spends money.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from apphost import SCREENSHOTS, browser_page, needs_chromium
from conftest import CANARY_KEY, make_server_settings, serve_http
from galleryseed import NEEDLE, seed_store
from pydantic import SecretStr

from ttapi_mcp.emulator import Emulator
from ttapi_mcp.gallery_cli import build_standalone_app, gallery_link
from ttapi_mcp.server.gallery import COOKIE, LINK_SECONDS, GalleryKeys

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "gallery-bearer-5c1d9e7a"
CALL = {"name": "app_gallery", "arguments": {"limit": 5}}
JSON = {"content-type": "application/json"}


def _post(http: httpx2.Client, url: str, body: Any, **kw: Any) -> httpx2.Response:
    return http.post(url, content=json.dumps(body), headers={**JSON, **kw.pop("headers", {})},
                     **kw)


@pytest.mark.anyio
async def test_loopback_without_token_has_the_checks_of_mcp(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = make_server_settings(emulator.base_url, tmp_path)
    await seed_store(settings, 12)
    with serve_http(settings) as origin, httpx2.Client(follow_redirects=False) as http:
        page = http.get(f"{origin}/gallery/")
        assert page.status_code == 200
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert "sandbox=\"allow-scripts\"" in page.text
        assert http.get(f"{origin}/gallery").status_code == 308
        assert http.get(f"{origin}/gallery/app.html").text.startswith("<!doctype html>")
        listed = _post(http, f"{origin}/gallery/api/call", CALL).json()
        assert listed["structuredContent"]["total"] == 12
        assert len(listed["structuredContent"]["items"]) == 5
        # The checks of /mcp: a foreign Host (DNS rebinding) or Origin gets nothing.
        assert http.get(f"{origin}/gallery/", headers={"Host": "evil.example"}).status_code == 421
        foreign = _post(http, f"{origin}/gallery/api/call", CALL,
                        headers={"Origin": "https://evil.example"})
        assert foreign.status_code == 403 and "items" not in foreign.text
        as_form = http.post(f"{origin}/gallery/api/call", content=json.dumps(CALL),
                            headers={"content-type": "text/plain"})
        assert as_form.status_code == 400
        # Read-only: a tool that spends money is refused, and nothing reaches TTAPI.
        spend = _post(http, f"{origin}/gallery/api/call", {
            "name": "generate_image", "arguments": {"prompt": "x"}}).json()
        assert spend["isError"] and "not available in the browser gallery" in (
            spend["content"][0]["text"])
        bad = _post(http, f"{origin}/gallery/api/call", {
            "name": "app_gallery", "arguments": {"limit": 0, "delete": True}}).json()
        assert bad["isError"] and "limit" in bad["content"][0]["text"]
        assert "delete" in bad["content"][0]["text"]
        assert _post(http, f"{origin}/gallery/api/call", "[").status_code == 400
    assert emulator.api_requests() == []


@pytest.fixture
def token_settings(emulator: Emulator, tmp_path: Path) -> Any:
    return make_server_settings(emulator.base_url, tmp_path,
                                http_bearer_token=SecretStr(TOKEN))


@pytest.mark.anyio
async def test_with_a_bearer_token_only_a_signed_link_lets_a_browser_in(
    emulator: Emulator, token_settings: Any
) -> None:
    await seed_store(token_settings, 7)
    with serve_http(token_settings) as origin, httpx2.Client(follow_redirects=False) as http:
        port = int(origin.rsplit(":", 1)[1])
        settings = token_settings.model_copy(update={"http_port": port})
        # Without the link: nothing, neither page nor app nor data.
        for path in ("/gallery", "/gallery/", "/gallery/app.html"):
            denied = http.get(f"{origin}{path}")
            assert denied.status_code == 403 and "signed link" in denied.text, path
        api = _post(http, f"{origin}/gallery/api/call", CALL)
        assert api.status_code == 403 and "items" not in api.text
        # A forged, expired or foreign link is refused too.
        keys = GalleryKeys.from_bearer_token(TOKEN)
        expired = keys.sign("link", LINK_SECONDS, now=time.time() - 2 * LINK_SECONDS)
        foreign = GalleryKeys.from_bearer_token("another-token").sign("link", 60)
        session_as_link = keys.sign("session", 60)
        for key in (expired, foreign, session_as_link, "1.abc", "x"):
            assert http.get(f"{origin}/gallery/?key={key}").status_code == 403, key
        with httpx2.Client(cookies={COOKIE: keys.sign("link", 60)}) as forger:
            assert forger.get(f"{origin}/gallery/").status_code == 403
        # /mcp keeps asking for the bearer header.
        assert http.post(f"{origin}/mcp", content="{}", headers=JSON).status_code == 401
        # The link the CLI prints: exchanged for a cookie, then the gallery answers.
        link = gallery_link(settings)
        assert link.startswith(f"{origin}/gallery/?key=")
        entered = http.get(link)
        assert entered.status_code == 303 and entered.headers["location"] == "/gallery/"
        cookie = entered.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/gallery" in cookie
        assert TOKEN not in cookie and TOKEN not in link
        with httpx2.Client(cookies={COOKIE: entered.cookies[COOKIE]}) as signed:
            assert signed.get(f"{origin}/gallery/").status_code == 200
            listed = _post(signed, f"{origin}/gallery/api/call", CALL).json()
        assert listed["structuredContent"]["total"] == 7
        text = json.dumps(listed)
        assert TOKEN not in text and CANARY_KEY not in text


def test_the_cli_prints_a_link_for_the_http_server(token_settings: Any, tmp_path: Path) -> None:
    env = {**os.environ, "TTAPI_HTTP_BEARER_TOKEN": TOKEN, "TTAPI_API_KEY": CANARY_KEY}
    done = subprocess.run(
        [sys.executable, "-m", "ttapi_mcp", "gallery", "--link", "--output-dir",
         str(tmp_path / "out"), "--set", "http_port=8123"],
        capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    link = done.stdout.strip()
    assert link.startswith("http://127.0.0.1:8123/gallery/?key=")
    assert GalleryKeys.from_bearer_token(TOKEN).valid("link", link.split("key=", 1)[1])
    assert TOKEN not in done.stdout + done.stderr and CANARY_KEY not in done.stdout


@contextmanager
def standalone(settings: Any) -> Iterator[tuple[str, GalleryKeys]]:
    """``ttapi-mcp gallery``'s app on uvicorn in a thread; yields (origin, keys)."""
    import socket

    import uvicorn

    keys = GalleryKeys.random()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    origin = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(build_standalone_app(settings, keys),
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "gallery did not start"
        time.sleep(0.01)
    try:
        yield origin, keys
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.mark.anyio
async def test_the_standalone_gallery_needs_its_link(emulator: Emulator, tmp_path: Path) -> None:
    settings = make_server_settings(emulator.base_url, tmp_path)
    await seed_store(settings, 3)
    with standalone(settings) as (origin, keys), httpx2.Client(follow_redirects=True) as http:
        assert http.get(f"{origin}/gallery/").status_code == 403
        assert _post(http, f"{origin}/gallery/api/call", CALL).status_code == 403
        entered = http.get(keys.link(origin))  # follows the redirect, keeps the cookie
        assert entered.status_code == 200 and "<iframe" in entered.text
        listed = _post(http, f"{origin}/gallery/api/call", CALL).json()
        assert listed["structuredContent"]["total"] == 3
        assert http.get(f"{origin}/mcp").status_code == 404  # the gallery alone


def test_ttapi_mcp_gallery_prints_its_link_and_serves(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ttapi_mcp", "gallery", "--no-browser", "--output-dir",
         str(tmp_path / "out")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=ROOT, env={**os.environ, "TTAPI_API_KEY": CANARY_KEY})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line, line
        url = line.split(" at ", 1)[1].strip()
        with httpx2.Client(follow_redirects=True) as http:
            for _ in range(100):
                try:
                    page = http.get(url)
                    break
                except httpx2.TransportError:
                    time.sleep(0.05)
            assert page.status_code == 200 and "<iframe" in page.text
        with httpx2.Client() as stranger:
            assert stranger.get(url.split("?")[0]).status_code == 403
    finally:
        proc.terminate()
        proc.wait(10)



@needs_chromium
@pytest.mark.anyio
async def test_the_browser_gallery_in_chromium(emulator: Emulator, tmp_path: Path) -> None:
    """The real page in a real browser: the link, the tiles, search, the viewer."""
    settings = make_server_settings(emulator.base_url, tmp_path)
    await seed_store(settings, 500)
    with standalone(settings) as (origin, keys):
        async with browser_page() as page:
            app = page.frame_locator("#app")
            response = await page.goto(f"{origin}/gallery/")
            assert response is not None and response.status == 403
            await page.goto(keys.link(origin))
            assert page.url == f"{origin}/gallery/"  # the key left the address bar
            await app.locator("#grid .tile").nth(59).wait_for()
            assert "of 500" in await app.locator("#g-status").inner_text()
            await page.wait_for_timeout(300)
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SCREENSHOTS / "browser-gallery.png"))
            await app.locator("#q").fill("zebra")
            await app.locator("#q").press("Enter")
            for _ in range(200):
                if await app.locator("#grid .tile").count() == 1:
                    break
                await page.wait_for_timeout(50)
            assert await app.locator("#grid .tile").first.get_attribute("title") == NEEDLE
            await app.locator("#grid .tile").first.click()
            await app.locator("#images figure img").wait_for()
            for _ in range(200):
                if await app.locator("#images figure img").evaluate(
                        "e => e.complete && e.naturalWidth > 0"):
                    break
                await page.wait_for_timeout(50)
            assert await app.locator("#images figure img").evaluate("e => e.naturalWidth") > 0
            # Editing spends money: the read-only gallery says so instead.
            await app.locator("#images figure button.edit").click()
            await app.locator("#edit-prompt").fill("add a hat")
            await app.locator("#edit-run").click()
            await app.locator("#status.error").wait_for()
            assert "not available in the browser gallery" in (
                await app.locator("#status").inner_text())
    assert emulator.api_requests() == []
