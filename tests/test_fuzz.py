"""Property tests: arbitrary arguments to every tool, through a real in-memory MCP client.

Whatever the arguments (right names with wrong types or values, unknown names, huge
strings, unicode, negative numbers, nested objects), the answer is a result or a tool
error with a message: never a protocol error and never a crash (the SDK reports a crash
as the bare "Error executing tool X", without the tool's own message). The key never
appears. And an invalid combination never reaches TTAPI: every request the emulator
(which validates independently of the catalog) sees during a call is one it accepts, and
a call the server refused as invalid made no request at all.

One server per test function, not per example, keeps 300+ examples per tool quick; the
base arguments are the emulator's cheapest call, so most valid examples cost little.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from conftest import CANARY_KEY, make_server_settings, mcp_client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from ttapi_mcp.emulator import Emulator, EmulatorServer

EXAMPLES = settings(
    max_examples=300, deadline=None, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)
@pytest.fixture(scope="module")
def emulator_server() -> Iterator[EmulatorServer]:
    """An emulator for this module alone (the `emulator` fixture resets it per test).

    These tests count requests and queue faults; a request from a server another test
    left finishing in the background must not land in their log or take their fault.
    """
    with EmulatorServer(Emulator(), host="127.0.0.1", port=0) as server:
        yield server


REFUSED_BEFORE_SENDING = ("was not sent", "was not submitted", "is not a job id",
                          "validation error")

TRICKY = st.sampled_from([
    "", " ", "\x00", "../../../../etc/passwd", "/etc/passwd", "/dev/zero", "/proc/self/environ",
    "file:///etc/passwd", "~/secret.png", "~no-such-user/x.png", "C:\\Windows\\win.ini",
    "CON", "NUL.png",
    "ttapi://images/../../x", "ttapi://images/", "data:image/png;base64,AAAA",
    "data:image/svg+xml;base64,PHN2Zz4=", "http://169.254.169.254/latest/meta-data",
    "http://127.0.0.1:1/x.png", "gopher://x", "1024x1024", "256X256", "0x0", "-1", "NaN",
    "1e309", "auto", "dall-e-2", "gpt-image-1", "\u202egnp.exe", "🦊" * 50, "a\nb\r\nc",
    "%00", "' OR 1=1 --", "{\"a\": 1}",
])
HUGE = st.builds(lambda ch, n: ch * n, st.characters(), st.integers(1_000, 40_000))
TEXT = st.one_of(st.text(max_size=40), TRICKY, HUGE)
SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.integers(-5, 20),
    st.floats(allow_nan=False, allow_infinity=False), TEXT,
)
JSON = st.recursive(
    SCALAR,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=6,
)


def arguments(base: dict[str, Any], fields: dict[str, st.SearchStrategy[Any]]
              ) -> st.SearchStrategy[dict[str, Any]]:
    """Mostly values of the right JSON types (so the catalog's combination rules decide),
    sometimes anything; mostly on top of the base call, sometimes on nothing."""
    typed = st.fixed_dictionaries({}, optional=fields)
    wild = st.fixed_dictionaries({}, optional={k: v | JSON for k, v in fields.items()})
    unknown = st.dictionaries(st.text(min_size=1, max_size=12).filter(lambda k: k not in fields),
                              JSON, max_size=2)
    return st.builds(lambda keep, picked, extra: {**(base if keep else {}), **picked, **extra},
                     st.sampled_from([True, True, True, False]), st.one_of(typed, typed, wild),
                     st.just({}) | unknown)


# Values of the right types; which combinations are valid is the catalog's business.
SIZES = st.sampled_from(["256x256", "512x512", "1024x1024", "1536x1024", "1024x1792", "auto",
                         "2048x2048", "1024x1025", "256x256 "]) | TEXT
COMMON = {
    "prompt": TEXT, "n": st.integers(1, 10), "size": SIZES,
    "quality": st.sampled_from(["auto", "low", "medium", "high", "standard", "hd"]),
    "background": st.sampled_from(["transparent", "opaque", "auto"]),
    "output_format": st.sampled_from(["png", "jpeg", "webp"]),
    "output_compression": st.integers(0, 100),
    "preview": st.sampled_from(["sheet", "thumbnail", "full", "none"]),
}
GENERATE = arguments(
    {"prompt": "a fuzzed fox", "model": "dall-e-2", "size": "256x256",
     "response_format": "b64_json"},
    {**COMMON, "model": st.sampled_from(["dall-e-2", "dall-e-3", "gpt-image-1",
                                         "gpt-image-1-mini", "gpt-image-1.5", "gpt-image-2"]),
     "style": st.sampled_from(["vivid", "natural"]),
     "moderation": st.sampled_from(["low", "auto"]),
     "response_format": st.sampled_from(["url", "b64_json"])},
)


class Harness:
    """An in-memory client on a server of its own, driven from synchronous hypothesis code."""

    def __init__(self, portal: BlockingPortal, client: Any, emulator: Emulator) -> None:
        self.portal = portal
        self.client = client
        self.emulator = emulator

    def call(self, tool: str, args: dict[str, Any], routes: tuple[str, ...]) -> tuple[Any, list[
            Any]]:
        """Call the tool; returns its result and the requests of `routes` made meanwhile."""
        before = len(self.emulator.log)
        try:
            result = self.portal.call(self.client.call_tool, tool, args)
        except Exception as exc:  # a JSON-RPC error: the server did not answer the call
            pytest.fail(f"{tool}({_short(args)}) raised {type(exc).__name__}: {exc}")
        seen = [r for r in list(self.emulator.log)[before:] if r.route in routes]
        return result, seen


def _short(args: dict[str, Any]) -> str:
    text = json.dumps(args, ensure_ascii=False, default=str)
    return text if len(text) < 300 else text[:300] + "..."


def check_answer(tool: str, args: dict[str, Any], result: Any) -> str:
    """A result or a tool error with a message; no key anywhere. Returns the error text."""
    dumped = json.dumps(result.model_dump(mode="json"), ensure_ascii=False)
    assert CANARY_KEY not in dumped
    if not result.is_error:
        assert result.structured_content["status"] in ("completed", "partial", "pending",
                                                        "failed"), dumped[:500]
        return ""
    text = " ".join(getattr(b, "text", "") for b in result.content)
    prefix = f"Error executing tool {tool}: "
    assert text.startswith(prefix) and len(text) > len(prefix) + 10, (
        f"{tool}({_short(args)}) crashed inside the server: {text!r}")
    return text


def check_upstream(args: dict[str, Any], text: str, seen: list[Any], ok: tuple[int, ...]) -> None:
    """Only requests TTAPI accepts were sent; a call refused as invalid sent nothing."""
    rejected = [(r.route, r.status, r.json or r.form) for r in seen if r.status not in ok]
    assert rejected == [], f"invalid request reached TTAPI for {_short(args)}: {rejected}"
    if any(marker in text for marker in REFUSED_BEFORE_SENDING):
        assert seen == [], f"refused as invalid but still sent: {_short(args)}"


@pytest.fixture
def harness(emulator: Emulator, tmp_path: Path, request: pytest.FixtureRequest
            ) -> Iterator[Harness]:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    picture = Image.new("RGBA", (256, 256), (30, 120, 200, 255))
    picture.paste((0, 0, 0, 0), (64, 64, 128, 128))
    picture.save(inputs / "square.png")
    Image.new("RGB", (64, 48), (9, 9, 9)).save(inputs / "small.jpg")
    (inputs / "notes.png").write_text("not an image")
    emulator.options.job_seconds = 3600.0  # 4o jobs stay queued: nothing to download
    overrides: dict[str, Any] = {
        "input_roots": [inputs], "allow_url_inputs": False, "allow_private_urls": False,
        "preview": "none", "poll_first_delay": 30.0, "poll_interval": 30.0,
        "poll_max_interval": 30.0, "wait_budget_seconds": 5.0,
    }
    overrides.update(getattr(request, "param", {}))
    settings_ = make_server_settings(emulator.base_url, tmp_path, **overrides)
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(
        mcp_client(settings_)
    ) as client:
        yield Harness(portal, client, emulator)


@EXAMPLES
@given(args=GENERATE)
def test_generate_image_answers_anything(harness: Harness, args: dict[str, Any]) -> None:
    result, seen = harness.call("generate_image", args, ("E1", "E3"))
    text = check_answer("generate_image", args, result)
    check_upstream(args, text, seen, (200,))


def _edit_arguments(inputs: str) -> st.SearchStrategy[dict[str, Any]]:
    square = f"{inputs}/square.png"
    refs = st.one_of(
        st.just(square), st.just(f"{inputs}/small.jpg"), st.just(f"{inputs}/notes.png"),
        st.just(f"{inputs}/../inputs/square.png"), st.just(f"file://{square}"),
        st.just(f"{inputs}/missing.png"), st.just(inputs), TEXT,
    )
    return arguments(
        {"prompt": "a fuzzed hat", "images": [square], "model": "dall-e-2", "size": "256x256"},
        {**COMMON, "model": st.sampled_from(["dall-e-2", "gpt-image-1", "gpt-image-1-mini"]),
         "images": st.lists(refs, max_size=18), "mask": refs,
         "input_fidelity": st.sampled_from(["high", "low"])},
    )


@EXAMPLES
@given(data=st.data())
def test_edit_image_answers_anything(harness: Harness, tmp_path: Path, data: st.DataObject
                                     ) -> None:
    args = data.draw(_edit_arguments(str(tmp_path / "inputs")))
    result, seen = harness.call("edit_image", args, ("E2",))
    text = check_answer("edit_image", args, result)
    check_upstream(args, text, seen, (200,))


GPT4O = arguments(
    {"prompt": "draw a fuzzed fox", "wait": False},
    {"prompt": TEXT, "wait": st.booleans(),
     "refer_images": st.lists(TEXT | st.just("https://example.com/ref.png"), max_size=18),
     "hook_url": TEXT | st.just("https://example.com/hook")},
)


@pytest.mark.parametrize("harness", [{"wait_budget_seconds": 0.02}], indirect=True)
@EXAMPLES
@given(args=GPT4O)
def test_gpt4o_image_answers_anything(harness: Harness, args: dict[str, Any]) -> None:
    result, seen = harness.call("gpt4o_image", args, ("E4",))
    text = check_answer("gpt4o_image", args, result)
    check_upstream(args, text, seen, (200,))


FETCH = arguments(
    {"job_id": "5ecc5080-b1d7-4b9f-8184-435e46ebb5cb"},
    {"job_id": TEXT | st.uuids().map(str), "wait": st.booleans()},
)


@EXAMPLES
@given(args=FETCH)
def test_fetch_job_answers_anything(harness: Harness, args: dict[str, Any]) -> None:
    result, seen = harness.call("fetch_job", args, ("E5",))
    text = check_answer("fetch_job", args, result)
    # An unknown but well-formed id is TTAPI's to judge (404); anything else is ours.
    check_upstream(args, text, seen, (200, 404))
    job_id = args.get("job_id")
    for record in seen:
        sent = (record.json or {}).get("jobId") or record.query.get("jobId")
        assert isinstance(job_id, str) and sent == job_id.strip(), (sent, _short(args))


GALLERY = arguments({}, {
    "cursor": TEXT, "query": TEXT, "model": TEXT, "job_id": TEXT, "since": TEXT,
    "until": TEXT, "tool": st.one_of(TEXT, st.sampled_from(["generate_image", "edit_image"])),
    "limit": st.one_of(st.integers(-5, 500), TEXT),
})


@EXAMPLES
@given(args=GALLERY, ids=st.lists(TEXT, max_size=20), size=st.one_of(TEXT, st.just("full")))
def test_the_app_tools_answer_anything(
    harness: Harness, args: dict[str, Any], ids: list[str], size: str
) -> None:
    """The gallery's and viewer's tools: a page or a tool error, never a crash, nothing sent."""
    for tool, tool_args in (("app_gallery", args), ("app_images", {"image_ids": ids,
                                                                   "size": size}),
                            ("app_partials", {"job_id": size, "have": ids})):
        result, seen = harness.call(tool, tool_args, ("E1", "E2", "E3", "E4", "E5"))
        assert seen == []
        dumped = json.dumps(result.model_dump(mode="json"), ensure_ascii=False)
        assert CANARY_KEY not in dumped
        if result.is_error:
            text = " ".join(getattr(b, "text", "") for b in result.content)
            explained = ("validation error", "cursor is not one", "must be a date",
                         "no image with id", "cannot be read", "does not know the argument")
            assert text.startswith(f"Error executing tool {tool}: "), text[:300]
            assert any(e in text for e in explained), f"{tool} crashed: {text[:300]}"
        else:
            assert tool == "app_gallery" or not ids or result.content, dumped[:300]
