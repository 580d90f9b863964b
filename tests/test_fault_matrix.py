"""The fault matrix: every upstream fault the emulator injects, through every tool.

For each (tool, fault) the test checks, through a real in-memory MCP client:
(a) what the caller sees says what happened and what to do (key words);
(b) retries follow the policy exactly (requests counted per route in the emulator's log);
(c) no partial or temporary file is left in the output folder;
(d) the database agrees with the folder (every file has a row, every row a file, and no
    request is left "running");
(e) the next call, without the fault, succeeds.

The README's "Reliability" table is this matrix in prose; keep the two in step.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio
import httpx2
import pytest
from conftest import CANARY_KEY, make_server_settings, mcp_client
from PIL import Image

from ttapi_mcp.emulator import Emulator, EmulatorServer, Fault
from ttapi_mcp.store import ImageStore

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def emulator_server() -> Iterator[EmulatorServer]:
    """An emulator for this module alone (the `emulator` fixture resets it per test).

    These tests count requests and queue faults; a request from a server another test
    left finishing in the background must not land in their log or take their fault.
    """
    with EmulatorServer(Emulator(), host="127.0.0.1", port=0) as server:
        yield server

Tool = Literal["generate_image", "edit_image", "gpt4o_image", "fetch_job"]
Outcome = Literal["error", "completed", "pending", "failed"]

PRIMARY_ROUTE: dict[Tool, str] = {
    "generate_image": "E1", "edit_image": "E2", "gpt4o_image": "E4", "fetch_job": "E5",
}
SHORT_TIMEOUT = 0.5
"""Read time-out used by the slow-response rows; the emulator then waits twice as long."""

MAYBE_BILLED = "may have completed upstream and been billed"
NOT_BILLED = "nothing was billed"
JOB_KEPT = ("not lost", "do not submit it again", "fetch_job(job_id=")
"""What a failed status check of a submitted job must say."""


@dataclass(frozen=True)
class Row:
    """One fault and what must follow from it on one kind of route.

    `fault` are the emulator Fault's fields (its `count` defaults to 1); `requests` is how
    many requests the faulted route must see during the call; `words` must all appear in
    the text the caller reads.
    """

    name: str
    fault: dict[str, Any]
    outcome: Outcome
    words: tuple[str, ...] = ()
    requests: int = 1
    settings: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    route: str | None = None  # when not the tool's own route


def _slow_settings() -> dict[str, Any]:
    return {"request_timeout": SHORT_TIMEOUT, "gpt_request_timeout": SHORT_TIMEOUT,
            "job_request_timeout": SHORT_TIMEOUT}


# Faults on a POST that may generate (E1, E2, E4): only what TTAPI cannot have processed is
# retried; everything that may have been processed says so and is sent exactly once.
POST_ROWS = [
    Row("401", {"status": 401}, "error", ("401", "TTAPI_API_KEY", NOT_BILLED)),
    Row("402", {"status": 402}, "error", ("402", "top up", NOT_BILLED)),
    Row("403-account-blocked", {"kind": "account_blocked"}, "error",
        ("403", "account is blocked", "contact TTAPI", NOT_BILLED)),
    Row("429-retry-after-0", {"status": 429, "retry_after": "0"}, "completed", requests=2),
    Row("429-exhausted", {"status": 429, "retry_after": "0", "count": 3}, "error",
        ("429", "after 3 attempts", "wait", NOT_BILLED), requests=3),
    Row("500", {"status": 500}, "error", ("500", MAYBE_BILLED, "do not simply")),
    Row("502", {"status": 502}, "completed", requests=2),
    Row("503-exhausted", {"status": 503, "count": 3}, "error",
        ("503", "after 3 attempts", NOT_BILLED, "try again"), requests=3),
    Row("504", {"status": 504}, "error", ("504", MAYBE_BILLED, "do not simply")),
    Row("failed-envelope", {"status": 200, "shape": "envelope", "message": "upstream refused"},
        "error", ("upstream refused",)),
    Row("dropped-connection", {"kind": "drop"}, "error",
        ("connection", "broke", MAYBE_BILLED, "do not simply")),
    Row("slower-than-timeout", {"kind": "slow", "delay": 2 * SHORT_TIMEOUT}, "error",
        ("no response", MAYBE_BILLED, "do not simply"), settings=_slow_settings()),
    Row("malformed-json", {"kind": "malformed_json"}, "error",
        ("unusable", MAYBE_BILLED, "do not simply")),
]
IMAGE_ROWS = [  # E1/E2 only: the answer carries images
    Row("truncated-base64", {"kind": "truncated_b64"}, "error",
        ("no image could be saved", "corrupt", "billed again")),
    Row("truncated-image", {"kind": "truncated_image"}, "error",
        ("no image could be saved", "incomplete", "billed again")),
]
STREAM_ROWS = [  # E1/E2 with partial_images: the stream goes wrong after the call was paid
    Row("stream-cut-after-partial", {"kind": "stream_cut"}, "error",
        (MAYBE_BILLED.replace("completed upstream and ", ""), "billed again")),
    Row("stream-malformed-event", {"kind": "stream_malformed"}, "completed"),
    Row("stream-never-completed", {"kind": "stream_no_completed"}, "error",
        (MAYBE_BILLED.replace("completed upstream and ", ""), "billed again")),
]
NO_B64_ROWS = [  # E4 and E5 answers carry no base64: the fault must change nothing
    Row("truncated-base64", {"kind": "truncated_b64"}, "completed"),
    Row("truncated-image", {"kind": "truncated_image"}, "completed"),
]
# E5 fetches are idempotent: every transient failure is retried, including 500 and 504.
E5_ROWS = [
    Row("401", {"status": 401}, "error", ("401", "TTAPI_API_KEY", *JOB_KEPT)),
    Row("402", {"status": 402}, "error", ("402", "top up", *JOB_KEPT)),
    Row("403-account-blocked", {"kind": "account_blocked"}, "error",
        ("403", "account is blocked", "contact TTAPI", *JOB_KEPT)),
    Row("429-retry-after-0", {"status": 429, "retry_after": "0"}, "completed", requests=2),
    Row("429-exhausted", {"status": 429, "retry_after": "0", "count": 3}, "error",
        ("429", "after 3 attempts", *JOB_KEPT), requests=3),
    Row("500", {"status": 500}, "completed", requests=2),
    Row("500-exhausted", {"status": 500, "count": 3}, "error",
        ("500", "after 3 attempts", *JOB_KEPT), requests=3),
    Row("502", {"status": 502}, "completed", requests=2),
    Row("503-exhausted", {"status": 503, "count": 3}, "error",
        ("503", "after 3 attempts", *JOB_KEPT), requests=3),
    Row("504", {"status": 504}, "completed", requests=2),
    Row("failed-envelope", {"status": 200, "shape": "envelope", "message": "upstream refused"},
        "error", ("upstream refused", *JOB_KEPT)),
    Row("dropped-connection", {"kind": "drop"}, "completed", requests=2),
    Row("dropped-exhausted", {"kind": "drop", "count": 3}, "error",
        ("connection", "after 3 attempts", *JOB_KEPT), requests=3),
    Row("slower-than-timeout", {"kind": "slow", "delay": 2 * SHORT_TIMEOUT}, "completed",
        requests=2, settings=_slow_settings()),
    Row("malformed-json", {"kind": "malformed_json"}, "error", ("unusable", *JOB_KEPT)),
]
DOWNLOAD_ROWS = [  # the result URL, for the routes that answer with one
    Row("expired-url", {"kind": "expired_url"}, "error", ("expired", "re-run")),
]
POLL_ROWS = [  # gpt4o_image's own status checks while it waits (E5, after a good submit)
    Row("poll-500", {"status": 500}, "completed", requests=2, route="E5"),
    Row("poll-dropped-connection", {"kind": "drop"}, "completed", requests=2, route="E5"),
]
JOB_ROWS = [  # 4o jobs only
    Row("on-queue-past-budget", {}, "pending", ("still running", "fetch_job"),
        requests=0, settings={"wait_budget_seconds": 0.3}, options={"job_seconds": 60.0}),
    Row("job-fails", {}, "failed", ("failed", "blocked by the test", "submit a new call"),
        requests=0,
        options={"job_outcome": "failed", "job_failure_message": "blocked by the test"}),
]


def _cases() -> list[Any]:
    table: dict[Tool, list[Row]] = {
        "generate_image": POST_ROWS + IMAGE_ROWS + STREAM_ROWS + DOWNLOAD_ROWS,
        "edit_image": POST_ROWS + IMAGE_ROWS + STREAM_ROWS + DOWNLOAD_ROWS,
        "gpt4o_image": POST_ROWS + NO_B64_ROWS + POLL_ROWS + DOWNLOAD_ROWS + JOB_ROWS,
        "fetch_job": E5_ROWS + NO_B64_ROWS + DOWNLOAD_ROWS + JOB_ROWS,
    }
    return [pytest.param(tool, row, id=f"{tool}-{row.name}")
            for tool, rows in table.items() for row in rows]


def _route_of(tool: Tool, row: Row) -> str:
    if row in DOWNLOAD_ROWS:
        return "download"
    return row.route or PRIMARY_ROUTE[tool]


def _url_result(tool: Tool, row: Row) -> bool:
    """Whether the call should get its image as a URL (downloaded) rather than base64.

    Edits use dall-e-2 (fast, URL answers) except where base64 itself is under test.
    """
    return row in DOWNLOAD_ROWS or (tool == "edit_image" and row not in IMAGE_ROWS)


class Caller:
    """Calls one tool with arguments that reach its route cheaply."""

    def __init__(self, client: Any, emulator: Emulator, input_png: Path,
                 stream: bool = False) -> None:
        self.stream = stream
        self.client = client
        self.emulator = emulator
        self.input_png = input_png

    async def submit_job(self, job_seconds: float) -> str:
        """A 4o job submitted elsewhere (straight to TTAPI), for fetch_job to collect.

        Submitted outside this server so that nothing here has polled or downloaded it
        yet: the first fetch_job is the first status check.
        """
        self.emulator.options.job_seconds = job_seconds
        async with httpx2.AsyncClient(base_url=str(self.emulator.base_url)) as http:
            answer = await http.post("/openai/4o-image/generations",
                                     json={"prompt": "draw a fetched fox"},
                                     headers={"TT-API-KEY": "elsewhere"})
        self.emulator.options.job_seconds = 0.05
        assert answer.status_code == 200, answer.text
        return str(answer.json()["data"]["job_id"])

    async def call(self, tool: Tool, url_result: bool, job_id: str | None = None) -> Any:
        if self.stream and tool in ("generate_image", "edit_image"):
            args = {"prompt": "a streamed fox", "model": "gpt-image-1", "quality": "low",
                    "size": "1024x1024", "partial_images": 1}
            if tool == "edit_image":
                args["images"] = [str(self.input_png)]
            return await self.client.call_tool(tool, args)
        if tool == "generate_image":
            return await self.client.call_tool("generate_image", {
                "prompt": "a fault-matrix fox", "model": "dall-e-2", "size": "256x256",
                "response_format": "url" if url_result else "b64_json"})
        if tool == "edit_image":
            model = "dall-e-2" if url_result else "gpt-image-1"  # dall-e-2 answers with URLs
            size = "256x256" if url_result else "1024x1024"
            args: dict[str, Any] = {"prompt": "add a hat", "images": [str(self.input_png)],
                                    "model": model, "size": size}
            if not url_result:
                args["quality"] = "low"
            return await self.client.call_tool("edit_image", args)
        if tool == "gpt4o_image":
            # dedupe=false: each row's call is its own submit (a still-running job of the
            # row before would otherwise be attached to)
            return await self.client.call_tool("gpt4o_image", {"prompt": "draw a fault fox",
                                                               "dedupe": False})
        assert job_id is not None
        return await self.client.call_tool("fetch_job", {"job_id": job_id, "wait": True})


def _text(result: Any) -> str:
    """The text the caller reads, without the SDK's "Error executing tool X:" prefix."""
    text = "\n".join(getattr(block, "text", "") for block in result.content)
    return re.sub(r"^Error executing tool \w+: ", "", text)


def _counts(emulator: Emulator, since: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in list(emulator.log)[since:]:
        counts[record.route] = counts.get(record.route, 0) + 1
    return counts


async def _faulted_requests_logged(emulator: Emulator, since: int, expected: int) -> None:
    """Wait (bounded) until the emulator has logged every faulted request.

    A slow answer is logged when the emulator finishes it, after the client gave up.
    """
    with anyio.fail_after(10):
        while sum(1 for r in list(emulator.log)[since:] if r.fault) < expected:
            await anyio.sleep(0.02)


async def _check_store(settings: Any) -> None:
    """(c) and (d): only whole images with rows in the folder; no request left running."""
    out: Path = settings.output_dir
    entries = sorted(p for p in out.rglob("*"))
    hidden = [p for p in entries if p.name.startswith(".")]
    assert hidden == [], f"temporary or hidden files left behind: {hidden}"
    async with ImageStore(out, settings.store_path) as store:
        report = await store.consistency_report()
    assert report.ok, report
    with sqlite3.connect(settings.store_path) as db:
        rows = {Path(r[0]) for r in db.execute("SELECT path FROM images")}
        running = db.execute("SELECT tool, status FROM requests WHERE status = 'running'")
        assert list(running) == []
    assert {p for p in entries if p.is_file()} == rows
    for path in rows:
        with Image.open(path) as im:
            im.load()  # a whole, decodable image


@pytest.mark.parametrize(("tool", "row"), _cases())
async def test_fault_matrix(
    tool: Tool, row: Row, emulator: Emulator, tmp_path: Path
) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    input_png = inputs / "in.png"
    picture = Image.new("RGBA", (256, 256), (200, 80, 40, 255))
    picture.paste((0, 0, 0, 0), (96, 96, 160, 160))  # dall-e-2 edits need a transparent area
    picture.save(input_png)
    overrides: dict[str, Any] = {"input_roots": [inputs], "wait_budget_seconds": 5.0,
                                 "preview": "none"}
    settings = make_server_settings(emulator.base_url, tmp_path, **{**overrides, **row.settings})
    route = _route_of(tool, row)
    url_result = _url_result(tool, row)

    with anyio.fail_after(60):
        async with mcp_client(settings) as client:
            caller = Caller(client, emulator, input_png, stream=row in STREAM_ROWS)
            emulator.options.stream_seconds = 0.05
            emulator.options.job_seconds = 0.05
            for name, value in row.options.items():
                setattr(emulator.options, name, value)
            job_id = None
            if tool == "fetch_job":
                job_id = await caller.submit_job(row.options.get("job_seconds", 0.0))
            if row.fault:
                emulator.add_fault(Fault(route=route, **row.fault))  # type: ignore[arg-type]
            start = len(emulator.log)
            result = await caller.call(tool, url_result, job_id)
            if row.fault:
                await _faulted_requests_logged(emulator, start, row.fault.get("count", 1))
            counts = _counts(emulator, start)
            text = _text(result)

            # (a) what the caller sees
            assert CANARY_KEY not in text
            if row.outcome == "error":
                assert result.is_error, text
            else:
                assert not result.is_error, text
                assert result.structured_content["status"] == row.outcome, text
            for word in row.words:
                assert word.lower() in text.lower(), f"{word!r} not in: {text}"
            # (b) retries, counted where they happen
            if row in JOB_ROWS:
                assert counts.get("E4", 0) == (1 if tool == "gpt4o_image" else 0), counts
                assert counts.get("download", 0) == 0, counts
            else:
                assert counts.get(route, 0) == row.requests, counts
                assert emulator.faults.pending() == [], "the fault was not fully consumed"
            if tool == "gpt4o_image" and route == "E4" and row.outcome == "error":
                assert counts.get("E5", 0) == 0, "polled a job whose id never arrived"

            # (e) the next call, fault gone, succeeds; a fetch failure leaves the job fetchable
            emulator.options.job_outcome = "success"
            emulator.options.job_seconds = 0.05
            if tool == "fetch_job" and (row.outcome != "error" or row in DOWNLOAD_ROWS):
                job_id = await caller.submit_job(0.0)
            again = await caller.call(tool, url_result, job_id)
            assert not again.is_error, _text(again)
            assert again.structured_content["status"] == "completed", _text(again)
            assert all(Path(im["path"]).is_file() for im in again.structured_content["images"])
    await _check_store(settings)

