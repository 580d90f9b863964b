"""OAuth sign-in over streamable HTTP, against a loopback issuer that signs real tokens.

Covers: protected-resource metadata (RFC 9728) naming the issuer and the scopes; 401
with ``resource_metadata`` for a missing or bad token (expired, wrong audience, wrong
issuer, unknown key, forged, unsigned, HMAC confusion, no subject); valid tokens with
the real ``mcp.Client`` in both protocol eras; 403 ``insufficient_scope`` per tool and
for resources; key rotation (unknown key id -> one refetch, rate limited); discovery
through the OpenID path; a down issuer; and the SDK's own OAuth client running the whole
flow (discovery from our 401, registration, sign-in with PKCE and RFC 8707 ``resource``,
step-up on our 403). Invalid calls never reach TTAPI.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import jwt
import pytest
from conftest import CANARY_KEY, make_server_settings, serve_http
from oauth_issuer import LoopbackIssuer, new_key, public_jwk
from pydantic import SecretStr

from ttapi_mcp.config import Settings
from ttapi_mcp.emulator import Emulator, EmulatorServer
from ttapi_mcp.server import http as server_http

ROOT = Path(__file__).resolve().parents[1]
MCP_HEADERS = {"Content-Type": "application/json",
               "Accept": "application/json, text/event-stream"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {},
    "clientInfo": {"name": "oauth-test", "version": "1"}}}
DALLE2 = {"prompt": "a signed-in owl", "model": "dall-e-2", "size": "256x256"}


@pytest.fixture(scope="module")
def emulator_server() -> Iterator[EmulatorServer]:
    """This module's own emulator: its request log must hold only this module's calls."""
    with EmulatorServer(Emulator(), host="127.0.0.1", port=0) as server:
        yield server


@pytest.fixture(scope="module")
def issuer() -> Iterator[LoopbackIssuer]:
    with LoopbackIssuer() as running:
        yield running


def oauth_settings(base_url: str, tmp_path: Path, issuer: str, **extra: Any) -> Settings:
    settings: Settings = make_server_settings(base_url, tmp_path, oauth_issuer=issuer, **extra)
    return settings


@pytest.fixture(scope="module")
def signed_in(
    emulator_server: EmulatorServer, issuer: LoopbackIssuer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """A server that needs the issuer's tokens; yields its origin (public_base_url)."""
    settings = oauth_settings(emulator_server.base_url, tmp_path_factory.mktemp("oauth"),
                              issuer.issuer, oauth_jwks_min_refresh_seconds=3600)
    with serve_http(settings, public=True) as origin:
        yield origin


def post(origin: str, body: Any, token: str | None = None) -> httpx2.Response:
    headers = dict(MCP_HEADERS)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx2.post(f"{origin}/mcp", json=body, headers=headers, timeout=10)


def call(name: str, arguments: dict[str, Any], request_id: int = 7) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
            "params": {"name": name, "arguments": arguments}}


def challenge(response: httpx2.Response) -> str:
    return str(response.headers.get("www-authenticate", ""))


# -- metadata and 401 ----------------------------------------------------------------------


def test_metadata_names_the_issuer_and_the_scopes(
    signed_in: str, issuer: LoopbackIssuer
) -> None:
    answer = httpx2.get(f"{signed_in}/.well-known/oauth-protected-resource/mcp", timeout=10)
    assert answer.status_code == 200, answer.text
    metadata = answer.json()
    assert metadata["resource"] == f"{signed_in}/mcp"
    # Exactly the issuer's own spelling (RFC 8414 §3.3: compared character for character).
    assert metadata["authorization_servers"] == [issuer.issuer]
    assert set(metadata["scopes_supported"]) == {"images:generate", "images:read"}
    assert metadata["bearer_methods_supported"] == ["header"]


def test_a_request_without_a_token_gets_401_pointing_at_the_metadata(
    emulator: Emulator, signed_in: str
) -> None:
    refused = post(signed_in, INIT)
    stream = httpx2.get(f"{signed_in}/mcp", headers={"Accept": "text/event-stream"}, timeout=10)
    for response in (refused, stream):
        assert response.status_code == 401
        assert challenge(response).startswith("Bearer ")
        assert (f'resource_metadata="{signed_in}/.well-known/oauth-protected-resource/mcp"'
                in challenge(response))
    assert emulator.api_requests() == []


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _bad_token(issuer: LoopbackIssuer, origin: str, case: str) -> str:
    audience = f"{origin}/mcp"
    if case == "expired":
        return issuer.token(audience, expires_in=-120)
    if case == "wrong audience":
        return issuer.token("http://127.0.0.1:9/mcp")
    if case == "audience is the origin only":
        return issuer.token(origin)
    if case == "wrong issuer":
        return issuer.token(audience, issuer="http://127.0.0.1:9")
    if case == "unknown key":
        return issuer.token(audience, kid="never-published", key=new_key())
    if case == "forged with a published key id":
        return issuer.token(audience, kid="key-1", key=new_key())
    if case == "no subject":
        return issuer.token(audience, subject=None)
    if case == "the reserved local subject":  # would see every stdio-mode row
        return issuer.token(audience, subject="local")
    if case == "unsigned":
        return jwt.encode({"iss": issuer.issuer, "aud": audience, "sub": "eve",
                           "exp": 4102444800, "scope": "images:generate images:read"},
                          None, algorithm="none", headers={"kid": "key-1"})
    if case == "hmac with the public key":  # the classic algorithm confusion, by hand
        public = json.dumps(public_jwk(issuer.keys["key-1"], "key-1")).encode()
        head = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "key-1"}).encode())
        body = _b64(json.dumps({"iss": issuer.issuer, "aud": audience, "sub": "eve",
                                "exp": 4102444800}).encode())
        mac = hmac.new(public, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{_b64(mac)}"
    if case == "not a jwt":
        return "definitely-not-a-jwt"
    raise AssertionError(case)


@pytest.mark.parametrize("case", [
    "expired", "wrong audience", "audience is the origin only", "wrong issuer", "unknown key",
    "forged with a published key id", "no subject", "the reserved local subject", "unsigned",
    "hmac with the public key", "not a jwt",
])
def test_bad_tokens_get_401(
    emulator: Emulator, signed_in: str, issuer: LoopbackIssuer, case: str
) -> None:
    token = _bad_token(issuer, signed_in, case)
    refused = post(signed_in, INIT, token)
    refused_call = post(signed_in, call("generate_image", DALLE2), token)
    accepted = post(signed_in, INIT, issuer.token(f"{signed_in}/mcp"))
    for response in (refused, refused_call):
        assert response.status_code == 401, (case, response.text)
        assert 'error="invalid_token"' in challenge(response)
        assert "resource_metadata=" in challenge(response)
        assert token not in response.text
    assert accepted.status_code == 200, accepted.text
    assert emulator.api_requests() == []


# -- a signed-in client --------------------------------------------------------------------


async def _client_call(origin: str, token: str, mode: str, work: Any) -> Any:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
        Client(streamable_http_client(f"{origin}/mcp", http_client=http), mode=mode) as client,
    ):
        return await work(client)


@pytest.mark.anyio
async def test_a_signed_in_client_generates_reads_and_fetches(
    emulator: Emulator, signed_in: str, issuer: LoopbackIssuer, client_mode: str
) -> None:
    emulator.options.job_seconds = 0.1

    async def work(client: Any) -> Any:
        tools = await client.list_tools()
        result = await client.call_tool("generate_image", DALLE2)
        uri = result.structured_content["images"][0]["uri"]
        read = await client.read_resource(uri)
        fetched = await client.call_tool("fetch_job", {
            "job_id": result.structured_content["job_id"]})
        return tools, result, read, fetched

    token = issuer.token(f"{signed_in}/mcp", subject=f"user-{client_mode}")
    tools, result, read, fetched = await _client_call(signed_in, token, client_mode, work)
    assert {t.name for t in tools.tools} >= {"generate_image", "fetch_job"}
    assert not result.is_error, result.content
    assert Path(result.structured_content["images"][0]["path"]).is_file()
    assert read.contents[0].mime_type == "image/png"
    assert not fetched.is_error, fetched.content
    assert len(emulator.api_requests("E1")) == 1  # the balance is read beside it


@pytest.mark.anyio
async def test_an_elliptic_curve_key_without_alg_is_accepted(
    emulator: Emulator, tmp_path: Path
) -> None:
    with LoopbackIssuer() as ec_issuer:
        ec_issuer.rotate("ec-1", kind="EC")
        original = ec_issuer.answer

        def without_alg(path: str) -> tuple[int, Any]:
            status, body = original(path)
            if path == "/jwks":
                body = {"keys": [{k: v for k, v in key.items() if k != "alg"}
                                 for key in body["keys"]]}
            return status, body

        ec_issuer.answer = without_alg  # type: ignore[method-assign]
        settings = oauth_settings(emulator.base_url, tmp_path, ec_issuer.issuer)
        with serve_http(settings, public=True) as origin:
            token = ec_issuer.token(f"{origin}/mcp")
            assert post(origin, INIT, token).status_code == 200
            # An RS256 header on an EC key is refused, not "converted".
            rsa_header = jwt.encode({"sub": "x"}, new_key(), algorithm="RS256",
                                    headers={"kid": "ec-1"})
            assert post(origin, INIT, rsa_header).status_code == 401


# -- scopes --------------------------------------------------------------------------------


@pytest.mark.parametrize(("granted", "method", "params", "needed"), [
    ("images:read", "tools/call", {"name": "generate_image", "arguments": DALLE2},
     "images:generate"),
    ("images:read", "tools/call", {"name": "edit_image", "arguments": {"prompt": "x",
                                                                      "images": ["a.png"]}},
     "images:generate"),
    ("images:read", "tools/call", {"name": "gpt4o_image", "arguments": {"prompt": "x"}},
     "images:generate"),
    ("images:generate", "tools/call", {"name": "fetch_job", "arguments": {"job_id": "x"}},
     "images:read"),
    ("images:generate", "resources/read", {"uri": "ttapi://images/abc"}, "images:read"),
    ("images:generate", "resources/list", {}, "images:read"),
    ("", "tools/call", {"name": "generate_image", "arguments": DALLE2}, "images:generate"),
    ("images:generate", "resources/subscribe", {"uri": "ttapi://jobs/x"}, "images:read"),
    ("images:generate", "subscriptions/listen",
     {"notifications": {"resourceSubscriptions": ["ttapi://jobs/x"]}}, "images:read"),
    ("images:generate", "tasks/list", {}, "images:read"),
    ("images:generate", "completion/complete", {
        "ref": {"type": "ref/resource", "uri": "ttapi://images/{image_id}"},
        "argument": {"name": "image_id", "value": ""}}, "images:read"),
])
def test_a_token_lacking_a_scope_gets_403_insufficient_scope(
    emulator: Emulator, signed_in: str, issuer: LoopbackIssuer, granted: str, method: str,
    params: dict[str, Any], needed: str,
) -> None:
    token = issuer.token(f"{signed_in}/mcp", scope=granted)
    answer = post(signed_in, {"jsonrpc": "2.0", "id": 42, "method": method, "params": params},
                  token)
    assert answer.status_code == 403, answer.text
    header = challenge(answer)
    assert header.startswith("Bearer ") and 'error="insufficient_scope"' in header
    assert f'scope="{needed}"' in header
    assert f'resource_metadata="{signed_in}/.well-known/oauth-protected-resource/mcp"' in header
    body = answer.json()
    assert body["id"] == 42 and body["error"]["data"] == {"error": "insufficient_scope",
                                                           "scope": needed}
    assert needed in body["error"]["message"]
    assert token not in answer.text
    # A batch hides nothing: one call that needs the scope refuses the lot.
    batch = post(signed_in, [{"jsonrpc": "2.0", "id": 1, "method": "ping"},
                             {"jsonrpc": "2.0", "id": 2, "method": method, "params": params}],
                 token)
    assert batch.status_code == 403
    assert emulator.api_requests() == []


def test_a_tool_name_cannot_inject_into_the_challenge(
    signed_in: str, issuer: LoopbackIssuer
) -> None:
    token = issuer.token(f"{signed_in}/mcp", scope="images:read")
    name = 'x", scope="images:read"\r\nSet-Cookie: a=b'
    answer = post(signed_in, call(name, {}), token)
    assert answer.status_code == 403
    assert "set-cookie" not in answer.headers
    assert challenge(answer).count('scope="') == 1


@pytest.mark.anyio
async def test_a_read_only_token_reads_but_cannot_spend(
    emulator: Emulator, signed_in: str, issuer: LoopbackIssuer, client_mode: str
) -> None:
    from mcp import MCPError

    async def work(client: Any) -> Any:
        tools = await client.list_tools()
        models = await client.read_resource("ttapi://models")
        fetched = await client.call_tool("fetch_job", {"job_id": "local-000000000000"})
        with pytest.raises(MCPError) as refused:
            await client.call_tool("generate_image", DALLE2)
        return tools, models, fetched, refused.value

    token = issuer.token(f"{signed_in}/mcp", scope="images:read")
    tools, models, fetched, refused = await _client_call(signed_in, token, client_mode, work)
    assert len(tools.tools) >= 4 and models.contents
    assert fetched.is_error and "local-000000000000" in fetched.content[0].text
    assert "images:generate" in str(refused)
    assert emulator.api_requests() == []


def test_an_oversized_body_with_a_valid_token_is_refused_by_the_size_cap(
    signed_in: str, issuer: LoopbackIssuer
) -> None:
    # The scope check reads bodies only up to the SDK's cap; larger ones get its 413.
    token = issuer.token(f"{signed_in}/mcp")
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {token}"}
    big = b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "x": "' + b"a" * (5 * 1024 * 1024)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 256 * 1024):
            yield big[start:start + 256 * 1024]

    declared = httpx2.post(f"{signed_in}/mcp", content=big, headers=headers, timeout=30)
    streamed = httpx2.post(f"{signed_in}/mcp", content=chunks(), headers=headers, timeout=30)
    assert declared.status_code == 413, declared.text[:200]
    assert streamed.status_code == 413, streamed.text[:200]


# -- keys: rotation, rate limit, discovery, a down issuer --------------------------------------


def test_a_rotated_key_is_fetched_once_and_the_withdrawn_one_refused(
    emulator: Emulator, tmp_path: Path
) -> None:
    with LoopbackIssuer() as rotating:
        settings = oauth_settings(emulator.base_url, tmp_path, rotating.issuer,
                                  oauth_jwks_min_refresh_seconds=0)
        with serve_http(settings, public=True) as origin:
            old = rotating.token(f"{origin}/mcp")
            assert post(origin, INIT, old).status_code == 200
            assert post(origin, INIT, old).status_code == 200
            assert rotating.jwks_fetches() == 1  # cached
            rotating.rotate("key-2", kind="EC")
            new = rotating.token(f"{origin}/mcp")
            assert post(origin, INIT, new).status_code == 200
            assert rotating.jwks_fetches() == 2
            assert post(origin, INIT, old).status_code == 401  # withdrawn from the set


def test_unknown_key_ids_refetch_at_most_once_per_interval(
    emulator: Emulator, tmp_path: Path
) -> None:
    with LoopbackIssuer() as limited:
        settings = oauth_settings(emulator.base_url, tmp_path, limited.issuer,
                                  oauth_jwks_min_refresh_seconds=3600)
        with serve_http(settings, public=True) as origin:
            assert post(origin, INIT, limited.token(f"{origin}/mcp")).status_code == 200
            for n in range(15):
                forged = limited.token(f"{origin}/mcp", kid=f"guess-{n}", key=new_key("EC"))
                assert post(origin, INIT, forged).status_code == 401
            limited.rotate("key-2")  # within the interval, a new key waits for the next fetch
            assert post(origin, INIT, limited.token(f"{origin}/mcp")).status_code == 401
            assert limited.jwks_fetches() == 1


def test_an_issuer_with_a_path_found_through_openid_discovery(
    emulator: Emulator, tmp_path: Path
) -> None:
    with LoopbackIssuer(path="/tenants/acme", openid_only=True) as tenant:
        settings = oauth_settings(emulator.base_url, tmp_path, tenant.issuer)
        with serve_http(settings, public=True) as origin:
            assert post(origin, INIT, tenant.token(f"{origin}/mcp")).status_code == 200
        assert tenant.requests[:3] == [
            "/.well-known/oauth-authorization-server/tenants/acme",
            "/.well-known/openid-configuration/tenants/acme", "/jwks"]


def test_a_discovery_document_for_another_issuer_is_refused(
    emulator: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with LoopbackIssuer() as impostor:
        impostor.issuer = "http://127.0.0.1:9"  # its metadata now names someone else
        settings = oauth_settings(emulator.base_url, tmp_path, impostor.origin)
        with serve_http(settings, public=True) as origin:
            token = impostor.token(f"{origin}/mcp", issuer=impostor.origin)
            assert post(origin, INIT, token).status_code == 401
        assert impostor.jwks_fetches() == 0
    assert "RFC 8414" in caplog.text


def test_an_unreachable_issuer_means_401_not_a_crash(
    emulator: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with LoopbackIssuer() as gone:
        token_for = gone.token
        dead_issuer = gone.issuer
    settings = oauth_settings(emulator.base_url, tmp_path, dead_issuer)
    with serve_http(settings, public=True) as origin:
        token = token_for(f"{origin}/mcp")
        assert post(origin, INIT, token).status_code == 401
        assert httpx2.get(f"{origin}/healthz", timeout=10).status_code == 200
    assert "could not fetch the signing keys" in caplog.text
    assert token not in caplog.text and CANARY_KEY not in caplog.text
    assert emulator.api_requests() == []


@pytest.mark.anyio
async def test_concurrent_unknown_keys_share_one_fetch() -> None:
    from ttapi_mcp.server.jwks import IssuerKeys

    with LoopbackIssuer() as shared:
        keys = IssuerKeys(shared.issuer, min_refresh_seconds=3600)
        found: list[Any] = []

        async def look(kid: str) -> None:
            found.append(await keys.key_for(kid))

        async with anyio.create_task_group() as tg:
            for kid in ["key-1"] * 5 + ["nope"] * 5:
                tg.start_soon(look, kid)
        assert shared.jwks_fetches() == 1
        assert sum(k is not None for k in found) == 5


# -- configuration -------------------------------------------------------------------------


def test_oauth_configuration_problems_are_explained() -> None:
    from ttapi_mcp.server.auth import oauth_problem

    base = {"oauth_issuer": "https://login.example.com",
            "public_base_url": "https://images.example.com"}
    assert oauth_problem(Settings(**base)) is None
    cases: list[tuple[dict[str, Any], str]] = [
        ({"oauth_issuer": "http://login.example.com"}, "https"),
        ({"oauth_issuer": "login.example.com"}, "absolute"),
        ({"public_base_url": None}, "public_base_url"),
        ({"public_base_url": "http://images.example.com"}, "https"),
        ({"http_bearer_token": SecretStr("a-static-token-123")}, "http_bearer_token"),
        ({"oauth_read_scope": "two words"}, "oauth_read_scope"),
    ]
    for change, words in cases:
        problem = oauth_problem(Settings(**{**base, **change}))
        assert problem is not None and words in problem, (change, problem)
        assert "a-static-token-123" not in problem


def test_oauth_allows_binding_beyond_loopback() -> None:
    signed = Settings(http_host="0.0.0.0", oauth_issuer="https://login.example.com",
                      public_base_url="https://images.example.com")
    assert server_http.binding_problem(signed) is None
    assert server_http.binding_problem(signed.model_copy(update={"public_base_url": None}))
    assert server_http.binding_problem(Settings(http_host="0.0.0.0")) is not None


def test_an_explicit_resource_url_is_the_audience(emulator: Emulator, tmp_path: Path) -> None:
    with LoopbackIssuer() as explicit:
        resource = "http://127.0.0.1:1/ttapi/mcp"  # as a proxy in front would publish it
        settings = oauth_settings(emulator.base_url, tmp_path, explicit.issuer,
                                  oauth_resource_url=resource)
        with serve_http(settings) as origin:
            assert post(origin, INIT, explicit.token(resource)).status_code == 200
            assert post(origin, INIT, explicit.token(f"{origin}/mcp")).status_code == 401
            metadata = httpx2.get(f"{origin}/.well-known/oauth-protected-resource/ttapi/mcp",
                                  timeout=10)
            assert metadata.json()["resource"] == resource


def test_sign_in_code_loads_only_when_configured() -> None:
    # Cold start is a benchmarked figure: without oauth_issuer, nothing of sign-in loads.
    script = (
        "import sys\n"
        "from ttapi_mcp.config import Settings\n"
        "from ttapi_mcp.server.app import build_server\n"
        "from ttapi_mcp.server.http import build_http_app\n"
        "s = Settings()\n"
        "build_http_app(s, build_server(s))\n"
        "print(sorted(m for m in ('jwt', 'ttapi_mcp.server.auth', 'ttapi_mcp.server.jwks',\n"
        "    'ttapi_mcp.server.scopes') if m in sys.modules))\n"
        "s = Settings(oauth_issuer='https://login.example.com',\n"
        "             public_base_url='https://images.example.com')\n"
        "build_http_app(s, build_server(s))\n"
        "print('ttapi_mcp.server.auth' in sys.modules, 'jwt' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=str(Path(__file__).resolve().parents[1]))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[]", "True False"]  # PyJWT: at the first token


def test_what_needs_no_scope_passes_with_any_valid_token(
    signed_in: str, issuer: LoopbackIssuer
) -> None:
    token = issuer.token(f"{signed_in}/mcp", scope="")
    for method, params in [("initialize", INIT["params"]), ("tools/list", {}),
                           ("prompts/list", {}), ("resources/templates/list", {}),
                           ("ping", {}), ("subscriptions/listen", {"notifications": {
                               "toolsListChanged": True}})]:
        answer = post(signed_in, {"jsonrpc": "2.0", "id": 3, "method": method,
                                  "params": params}, token)
        assert answer.status_code != 403, (method, answer.text)


def test_the_hook_route_stays_outside_sign_in(
    emulator: Emulator, signed_in: str
) -> None:
    from ttapi_mcp.server.hooks import HOOK_PREFIX

    # TTAPI cannot sign in: the hook route answers on its own per-job token (403 here).
    answer = httpx2.post(f"{signed_in}{HOOK_PREFIX}made-up?token=guess", json={}, timeout=10)
    assert answer.status_code == 403
    assert emulator.api_requests() == []


@pytest.mark.anyio
async def test_a_generate_only_token_spends_but_cannot_read(
    emulator: Emulator, signed_in: str, issuer: LoopbackIssuer, client_mode: str
) -> None:
    from mcp import MCPError

    emulator.options.job_seconds = 0.1

    async def work(client: Any) -> Any:
        result = await client.call_tool("generate_image", DALLE2)
        with pytest.raises(MCPError) as refused:
            await client.read_resource(result.structured_content["images"][0]["uri"])
        return result, refused.value

    token = issuer.token(f"{signed_in}/mcp", scope="images:generate")
    result, refused = await _client_call(signed_in, token, client_mode, work)
    assert not result.is_error, result.content
    assert "images:read" in str(refused)
    assert len(emulator.api_requests("E1")) == 1  # the balance is read beside it


def test_a_duplicated_key_cannot_smuggle_a_paid_call(
    emulator: Emulator, signed_in: str, issuer: LoopbackIssuer
) -> None:
    # The gate parses like the SDK (the last of duplicate keys wins), so the tool it
    # checks is the tool that would run.
    token = issuer.token(f"{signed_in}/mcp", scope="images:read")
    raw = ('{"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": '
           '"fetch_job", "arguments": {"job_id": "x"}, "name": "generate_image"}}')
    answer = httpx2.post(f"{signed_in}/mcp", content=raw, timeout=10,
                         headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"})
    assert answer.status_code == 403 and 'scope="images:generate"' in challenge(answer)
    assert emulator.api_requests() == []


@pytest.mark.parametrize("problem", ["no public url", "with static token", "plain http"])
def test_a_bad_sign_in_configuration_refuses_to_start(
    emulator: Emulator, tmp_path: Path, problem: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTAPI_")}
    env.update({"PYTHONPATH": str(ROOT), "TTAPI_BASE_URL": str(emulator.base_url),
                "TTAPI_API_KEY": CANARY_KEY, "TTAPI_OUTPUT_DIR": str(tmp_path / "out"),
                "TTAPI_DATABASE_PATH": str(tmp_path / "db.sqlite3"),
                "TTAPI_OAUTH_ISSUER": "https://login.example.com",
                "TTAPI_PUBLIC_BASE_URL": "https://images.example.com"})
    words = {"no public url": "public_base_url", "with static token": "http_bearer_token",
             "plain http": "https"}[problem]
    if problem == "no public url":
        del env["TTAPI_PUBLIC_BASE_URL"]
    if problem == "with static token":
        env["TTAPI_HTTP_BEARER_TOKEN"] = "static-token-0f9e8d7c"
    if problem == "plain http":
        env["TTAPI_OAUTH_ISSUER"] = "http://login.example.com"
    for transport in ("http", "stdio"):
        done = subprocess.run(
            [sys.executable, "-m", "ttapi_mcp", "serve", "--transport", transport, "--port",
             "0"], env=env, capture_output=True, text=True, timeout=60, cwd="/",
            stdin=subprocess.DEVNULL)
        assert done.returncode == 2, done.stderr
        assert words in done.stderr and "Traceback" not in done.stderr
        assert CANARY_KEY not in done.stderr and "static-token-0f9e8d7c" not in done.stderr
    assert emulator.api_requests() == []


# -- the SDK's own OAuth client: discovery, registration, sign-in, step-up -----------------------


class MemoryTokens:
    """The SDK client's TokenStorage, in memory."""

    def __init__(self) -> None:
        self.tokens: Any = None
        self.client: Any = None

    async def get_tokens(self) -> Any:
        return self.tokens

    async def set_tokens(self, tokens: Any) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> Any:
        return self.client

    async def set_client_info(self, client_info: Any) -> None:
        self.client = client_info


def oauth_client_auth(origin: str) -> Any:
    """An OAuthClientProvider whose 'browser' follows /authorize and hands back the code."""
    from mcp.client.auth import OAuthClientProvider
    from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata

    redirect_uri = "http://127.0.0.1:1/callback"  # never contacted: the code is read here
    landed: list[dict[str, str]] = []

    async def redirect_handler(url: str) -> None:
        async with httpx2.AsyncClient(follow_redirects=False) as browser:
            answer = await browser.get(url, timeout=10)
        assert answer.status_code == 302, answer.text
        location = answer.headers["location"]
        assert location.startswith(redirect_uri)
        query = dict(pair.split("=", 1) for pair in location.split("?", 1)[1].split("&"))
        landed.append(query)

    async def callback_handler() -> AuthorizationCodeResult:
        query = landed.pop()
        return AuthorizationCodeResult(code=query["code"], state=query["state"])

    return OAuthClientProvider(
        server_url=f"{origin}/mcp",
        client_metadata=OAuthClientMetadata(
            client_name="ttapi-mcp test client", redirect_uris=[redirect_uri],  # type: ignore[list-item]
            grant_types=["authorization_code", "refresh_token"], response_types=["code"],
            token_endpoint_auth_method="none"),
        storage=MemoryTokens(), redirect_handler=redirect_handler,
        callback_handler=callback_handler)


@pytest.mark.anyio
async def test_the_sdk_oauth_client_signs_in_and_steps_up_for_a_paid_call(
    emulator: Emulator, tmp_path: Path, client_mode: str
) -> None:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    emulator.options.job_seconds = 0.1
    with LoopbackIssuer() as login:
        asked: list[str] = []

        def grant(requested: str) -> str:  # first sign-in: reading only
            asked.append(requested)
            return "images:read" if len(asked) == 1 else requested

        login.grant = grant
        settings = oauth_settings(emulator.base_url, tmp_path, login.issuer)
        with serve_http(settings, public=True) as origin:
            async with (
                httpx2.AsyncClient(auth=oauth_client_auth(origin)) as http,
                Client(streamable_http_client(f"{origin}/mcp", http_client=http),
                       mode=client_mode) as client,
            ):
                fetched = await client.call_tool("fetch_job", {"job_id": "local-000000000000"})
                assert emulator.api_requests() == []
                result = await client.call_tool("generate_image", DALLE2)
    assert fetched.is_error and "local-000000000000" in fetched.content[0].text
    assert not result.is_error, result.content
    assert Path(result.structured_content["images"][0]["path"]).is_file()
    assert len(emulator.api_requests("E1")) == 1  # the balance is read beside it
    # It found the scopes in our metadata, signed in once, and again for the paid call.
    assert set(asked[0].split()) == {"images:generate", "images:read"}
    assert len(asked) == 2 and "images:generate" in asked[1].split()
    assert [r["resource"] for r in login.token_requests] == [f"{origin}/mcp"] * 2
    assert login.requests.count("/register") == 1


def test_a_session_stays_with_the_user_who_opened_it(
    signed_in: str, issuer: LoopbackIssuer
) -> None:
    # 2025-11-25 sessions: another user's valid token cannot ride on a session id.
    alice = issuer.token(f"{signed_in}/mcp", subject="alice")
    bob = issuer.token(f"{signed_in}/mcp", subject="bob")
    opened = post(signed_in, INIT, alice)
    assert opened.status_code == 200
    session = opened.headers["mcp-session-id"]
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}

    def with_session(token: str) -> httpx2.Response:
        return httpx2.post(f"{signed_in}/mcp", json=listing, timeout=10, headers={
            **MCP_HEADERS, "Authorization": f"Bearer {token}", "Mcp-Session-Id": session,
            "Mcp-Protocol-Version": "2025-11-25"})

    assert with_session(alice).status_code == 200
    refused = with_session(bob)
    assert refused.status_code in (403, 404), refused.text
    assert "generate_image" not in refused.text
