"""Per-user isolation over real streamable HTTP, with tokens of a loopback issuer.

Two users (alice, bob) on one OAuth server: each lists, reads, fetches and edits from
only their own images and jobs; the other's image URI or job id answers "not found"
(never "forbidden"), without asking TTAPI; identical calls of two users are two calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from conftest import make_server_settings, serve_http
from oauth_issuer import LoopbackIssuer

from ttapi_mcp.emulator import Emulator, EmulatorServer

pytestmark = pytest.mark.anyio
DALLE2 = {"prompt": "a private lighthouse", "model": "dall-e-2", "size": "256x256"}


@pytest.fixture(scope="module")
def emulator_server() -> Iterator[EmulatorServer]:
    """This module's own emulator: its request log must hold only this module's calls."""
    with EmulatorServer(Emulator(), host="127.0.0.1", port=0) as server:
        yield server


@pytest.fixture(scope="module")
def issuer() -> Iterator[LoopbackIssuer]:
    with LoopbackIssuer() as running:
        yield running


@pytest.fixture(scope="module")
def origin(
    emulator_server: EmulatorServer, issuer: LoopbackIssuer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    settings = make_server_settings(emulator_server.base_url, tmp_path_factory.mktemp("users"),
                                    oauth_issuer=issuer.issuer, dedupe_window_seconds=60)
    with serve_http(settings, public=True) as running:
        yield running


class User:
    """One signed-in user's MCP client over streamable HTTP."""

    def __init__(self, origin: str, token: str) -> None:
        self.origin, self.token = origin, token

    async def run(self, work: Any, **options: Any) -> Any:
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client

        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {self.token}"},
                               timeout=30) as http,
            Client(streamable_http_client(f"{self.origin}/mcp", http_client=http),
                   **options) as client,
        ):
            return await work(client)


def user(origin: str, issuer: LoopbackIssuer, name: str) -> User:
    return User(origin, issuer.token(f"{origin}/mcp", subject=name))


def _text(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


async def test_a_user_sees_only_their_own_images_and_jobs(
    emulator: Emulator, origin: str, issuer: LoopbackIssuer
) -> None:
    emulator.options.job_seconds = 0.1
    alice, bob = user(origin, issuer, "alice"), user(origin, issuer, "bob")

    async def alice_work(client: Any) -> dict[str, Any]:
        made = await client.call_tool("generate_image", DALLE2)
        four_o = await client.call_tool("gpt4o_image", {"prompt": "a secret map"})
        assert not made.is_error and not four_o.is_error, (_text(made), _text(four_o))
        return {"uri": made.structured_content["images"][0]["uri"],
                "path": made.structured_content["images"][0]["path"],
                "job": made.structured_content["job_id"],
                "four_o": four_o.structured_content["job_id"],
                "four_o_uri": four_o.structured_content["images"][0]["uri"]}

    mine = await alice.run(alice_work)
    calls_before = len(emulator.api_requests())

    async def bob_work(client: Any) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key in ("uri", "four_o_uri"):
            try:
                await client.read_resource(mine[key])
                seen[key] = "read"
            except Exception as exc:  # the SDK raises the server's error
                seen[key] = str(exc)
        seen["job"] = _text(await client.call_tool("fetch_job", {"job_id": mine["job"]}))
        seen["four_o"] = _text(await client.call_tool("fetch_job", {"job_id": mine["four_o"]}))
        seen["edit"] = await client.call_tool("edit_image", {
            "prompt": "make it mine", "images": [mine["uri"]], "model": "dall-e-2"})
        seen["path_edit"] = await client.call_tool("edit_image", {
            "prompt": "make it mine", "images": [mine["path"]], "model": "dall-e-2"})
        try:
            seen["job_resource"] = await client.read_resource(f"ttapi://jobs/{mine['job']}")
        except Exception as exc:
            seen["job_resource"] = str(exc)
        listed = await client.list_resources()
        seen["listed"] = {str(r.uri) for r in listed.resources}
        jobs = await client.read_resource("ttapi://jobs")
        seen["jobs"] = jobs.contents[0].text
        return seen

    seen = await bob.run(bob_work)
    for key in ("uri", "four_o_uri"):
        assert "No saved image has id" in seen[key], seen[key]
    assert "No job" in seen["job"] and "recorded" in seen["job"]
    assert "does not know job" in seen["four_o"]
    assert seen["edit"].is_error and "no saved image has this id" in _text(seen["edit"])
    assert seen["path_edit"].is_error and "cannot name files on the server" in \
        _text(seen["path_edit"])
    assert "No job" in str(seen["job_resource"])
    for text in (seen["uri"], seen["job"], seen["four_o"], _text(seen["edit"])):
        assert "forbidden" not in text.lower() and "another user" not in text.lower()
    assert not {mine["uri"], mine["four_o_uri"]} & seen["listed"]
    assert mine["job"] not in seen["jobs"] and mine["four_o"] not in seen["jobs"]
    assert len(emulator.api_requests()) == calls_before  # nothing of bob's reached TTAPI

    async def alice_again(client: Any) -> tuple[Any, Any, set[str]]:
        read = await client.read_resource(mine["uri"])
        fetched = await client.call_tool("fetch_job", {"job_id": mine["four_o"]})
        listed = {str(r.uri) for r in (await client.list_resources()).resources}
        return read, fetched, listed

    read, fetched, listed = await alice.run(alice_again)
    assert read.contents[0].mime_type == "image/png"
    assert not fetched.is_error and fetched.structured_content["images"][0]["uri"] == \
        mine["four_o_uri"]
    assert {mine["uri"], mine["four_o_uri"]} <= listed


async def test_identical_calls_of_two_users_are_two_calls_and_one_users_are_one(
    emulator: Emulator, origin: str, issuer: LoopbackIssuer
) -> None:
    emulator.options.latency_seconds = 0.8  # the first call is still in flight
    args = {**DALLE2, "prompt": "the same prompt for everyone"}
    carol, dave = user(origin, issuer, "carol"), user(origin, issuer, "dave")
    got: dict[str, Any] = {}

    async def call(who: User, name: str, arguments: dict[str, Any]) -> None:
        got[name] = await who.run(lambda c: c.call_tool("generate_image", arguments))

    async def second_while_first_runs(first: tuple[User, str], second: tuple[User, str],
                                      arguments: dict[str, Any]) -> int:
        before = len(emulator.arrived("E1"))
        async with anyio.create_task_group() as tg:
            tg.start_soon(call, *first, arguments)
            with anyio.fail_after(10):
                while len(emulator.arrived("E1")) == before:
                    await anyio.sleep(0.02)
            tg.start_soon(call, *second, arguments)
        return len(emulator.arrived("E1")) - before

    two_users = await second_while_first_runs((carol, "carol"), (dave, "dave"), args)
    again = {**args, "prompt": "carol asks twice"}
    one_user = await second_while_first_runs((carol, "carol-1"), (carol, "carol-2"), again)
    before = len(emulator.arrived("E1"))
    await call(dave, "dave-late", args)
    later = len(emulator.arrived("E1")) - before
    uri = {name: r.structured_content["images"][0]["uri"] for name, r in got.items()}
    assert two_users == 2 and uri["carol"] != uri["dave"]  # never attached across users
    assert one_user == 1 and uri["carol-1"] == uri["carol-2"]  # attached to her own call
    # the dedupe window reuses a recent result, and only the same user's
    assert later == 0 and uri["dave-late"] == uri["dave"]
    assert Path(got["dave"].structured_content["images"][0]["path"]).is_file()


async def test_identical_gpt4o_jobs_of_two_users_are_two_jobs_and_one_users_are_one(
    emulator: Emulator, origin: str, issuer: LoopbackIssuer
) -> None:
    """The claim taken before an upstream submit is per user too."""
    emulator.options.job_seconds = 1.0
    args = {"prompt": "draw the same job for everyone", "wait": False}
    erin, frank = user(origin, issuer, "erin"), user(origin, issuer, "frank")

    async def submit(who: User) -> str:
        result = await who.run(lambda c: c.call_tool("gpt4o_image", args))
        assert not result.is_error, result.content
        return str(result.structured_content["job_id"])

    before = len(emulator.arrived("E4"))
    erin_job, frank_job, erin_again = await submit(erin), await submit(frank), await submit(erin)
    assert len(emulator.arrived("E4")) - before == 2
    assert erin_job != frank_job and erin_again == erin_job


async def test_the_app_and_partial_images_show_a_user_only_their_own(
    emulator: Emulator, origin: str, issuer: LoopbackIssuer
) -> None:
    from mcp.client.extension import advertise
    from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID

    apps = [advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})]
    alice, bob = user(origin, issuer, "alice-app"), user(origin, issuer, "bob-app")
    streamed = {"prompt": "a private heron", "model": "gpt-image-1", "quality": "low",
                "size": "1024x1024", "preview": "none", "partial_images": 1}

    async def alice_work(client: Any) -> dict[str, Any]:
        made = await client.call_tool("generate_image", streamed)
        assert not made.is_error, _text(made)
        job = made.structured_content["job_id"]
        own = await client.call_tool("app_partials", {"job_id": job})
        gallery = await client.call_tool("app_gallery", {})
        return {"id": made.structured_content["images"][0]["id"], "job": job,
                "partials": own.structured_content["partials"],
                "gallery": {t["id"] for t in gallery.structured_content["items"]}}

    mine = await alice.run(alice_work, extensions=apps)
    assert mine["id"] in mine["gallery"] and mine["partials"]

    async def bob_work(client: Any) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        seen["gallery"] = await client.call_tool("app_gallery", {})
        seen["images"] = await client.call_tool("app_images", {"image_ids": [mine["id"]]})
        seen["partials"] = await client.call_tool("app_partials", {"job_id": mine["job"]})
        seen["show"] = await client.call_tool("show_gallery", {})
        try:
            await client.read_resource(mine["partials"][0]["uri"])
            seen["partial"] = "read"
        except Exception as exc:
            seen["partial"] = str(exc)
        return seen

    seen = await bob.run(bob_work, extensions=apps)
    assert mine["id"] not in {t["id"] for t in seen["gallery"].structured_content["items"]}
    assert seen["images"].is_error and "no image with id" in _text(seen["images"])
    assert seen["partials"].structured_content["partials"] == []
    assert seen["show"].structured_content["total"] == 0
    assert "no partial image" in seen["partial"]
