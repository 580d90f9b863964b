"""Background jobs: every paid call runs in a task group owned by the server, not the request.

Why: a desktop client gives up on a tool call after about a minute and agents then retry,
paying twice. So the work (upstream request, download, save) runs in the server's own
task group and outlives the call; the call only *waits* for it, up to the wait budget,
and then answers "pending" with the job id. A job is recorded in SQLite before it is
sent, and its result when it ends, so ``fetch_job`` finds it even after a restart.

Cancellation follows the money: until a request may have reached TTAPI (still queued
for a slot, still uploading) a job whose last waiter cancels is stopped and marked
``cancelled``; once it may have reached TTAPI (``committed``) it always runs to the end
and its images are saved, because they may already be billed.

The cap on concurrent upstream requests is an anyio ``CapacityLimiter``: its waiters
are woken first come, first served, so queued calls go in order.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from ttapi_mcp.filenames import new_short_id
from ttapi_mcp.logs import job_id_var

from .common import ServiceError
from .results import ImageToolResult

if TYPE_CHECKING:
    from .progress import Ticker

log = logging.getLogger("ttapi_mcp.service")

LOCAL_PREFIX = "local-"
"""Local job ids look like ``local-1a2b3c4d5e6f``: never a TTAPI UUID."""

Work = Callable[["LiveJob"], Awaitable[ImageToolResult]]
Changed = Callable[[str], Awaitable[None]]


def new_local_id() -> str:
    return LOCAL_PREFIX + new_short_id()


def is_local(job_id: str) -> bool:
    return job_id.startswith(LOCAL_PREFIX)


@dataclass(eq=False)
class LiveJob:
    """A job running in this process: its phase, waiters and (once done) its outcome."""

    job_id: str
    kind: str
    model: str = ""
    dedupe_key: str | None = None
    phase: str = "queued"
    upstream_status: str = "running"
    committed: bool = False
    """The request may have reached TTAPI: never cancel it any more."""
    promised: bool = False
    """A caller was told to collect it later: never cancel it."""
    waiters: int = 0
    result: ImageToolResult | None = None
    error: str | None = None
    done: anyio.Event = field(default_factory=anyio.Event)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    wake: anyio.Event = field(default_factory=anyio.Event)
    tickers: set[Ticker] = field(default_factory=set)
    on_phase: Callable[[LiveJob], None] | None = None
    """Records a new phase in the job's row, so other processes can show it."""
    noted_phase: str | None = None

    def set_phase(self, phase: str) -> None:
        """This process's work moved on: say so to waiters here and in the row."""
        self.show_phase(phase)
        if self.on_phase is not None and phase != self.noted_phase:
            self.noted_phase = phase
            self.on_phase(self)

    def show_phase(self, phase: str) -> None:
        """Tell this process's waiters (e.g. a phase read from another process's row)."""
        self.phase = phase
        for ticker in list(self.tickers):
            ticker.poke()

    def describe(self) -> str:
        return f"job {self.job_id}: {self.phase}"

    def commit(self) -> None:
        self.committed = True

    def poke(self) -> None:
        """Wake a sleeping poller (a hook said the job ended)."""
        self.wake.set()


@dataclass
class HookEntry:
    """A 4o hook this server handed out: its token's sha256 and, once known, its job."""

    digest: str
    job_id: str | None = None
    used: bool = False


class JobRunner:
    """Live jobs, the upstream cap, and the task group they run in."""

    def __init__(self, tg: TaskGroup, max_concurrent: int) -> None:
        self._tg = tg
        self.limiter = anyio.CapacityLimiter(max_concurrent)
        self.live: dict[str, LiveJob] = {}
        self._by_key: dict[str, LiveJob] = {}
        self.hooks: dict[str, HookEntry] = {}
        self.on_changed: Changed | None = None
        """Called with a job id whenever a job ends (the server publishes resources/updated)."""
        self.on_phase: Callable[[LiveJob], None] | None = None
        """Given to every job started here (see :attr:`LiveJob.on_phase`)."""

    def find(self, job_id: str) -> LiveJob | None:
        return self.live.get(job_id)

    def background(self, fn: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        """Run ``fn`` in the server's task group: bookkeeping no call waits for."""
        self._tg.start_soon(fn, name=name)

    def running_with_key(self, key: str) -> LiveJob | None:
        return self._by_key.get(key)

    def queue_position(self) -> int:
        return int(self.limiter.statistics().tasks_waiting)

    def start(
        self,
        job: LiveJob,
        work: Work,
        finish: Callable[[LiveJob], Awaitable[None]],
        cleanup: AsyncExitStack | None = None,
    ) -> LiveJob:
        """Run ``work`` in the background; ``finish`` records the outcome (shielded)."""
        self.live[job.job_id] = job
        job.on_phase = job.on_phase or self.on_phase
        if job.dedupe_key:
            self._by_key[job.dedupe_key] = job
        self._tg.start_soon(self._run, job, work, finish, cleanup, name=job.job_id)
        return job

    async def _run(
        self,
        job: LiveJob,
        work: Work,
        finish: Callable[[LiveJob], Awaitable[None]],
        cleanup: AsyncExitStack | None,
    ) -> None:
        job_id_var.set(job.job_id)  # this task's log lines name their job
        stack = cleanup or AsyncExitStack()
        try:
            async with stack:
                with job.scope:
                    try:
                        job.result = await work(job)
                    except ServiceError as exc:
                        job.error = str(exc)
                    except Exception as exc:  # a bug must not lose the job's record
                        log.exception("job %s crashed", job.job_id)
                        job.error = f"internal error in job {job.job_id}: {type(exc).__name__}"
                if job.scope.cancelled_caught:
                    job.upstream_status = "cancelled"
                    job.error = (
                        f"Job {job.job_id} was cancelled before its request reached TTAPI; "
                        "nothing was billed."
                    )
        except anyio.get_cancelled_exc_class():
            # The server is stopping: a committed job may have been billed upstream.
            job.upstream_status = "interrupted" if job.committed else "cancelled"
            job.error = (
                interrupted_message(job.job_id) if job.committed else
                f"Job {job.job_id} was stopped with the server before its request reached "
                "TTAPI; nothing was billed."
            )
            raise
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await finish(job)
                except Exception:
                    log.exception("could not record the end of job %s", job.job_id)
                self.live.pop(job.job_id, None)
                if job.dedupe_key and self._by_key.get(job.dedupe_key) is job:
                    del self._by_key[job.dedupe_key]
                job.done.set()
                if self.on_changed is not None:
                    try:
                        await self.on_changed(job.job_id)
                    except Exception:
                        log.exception("could not announce the end of job %s", job.job_id)

    async def wait(
        self,
        job: LiveJob,
        ticker: Ticker,
        budget: float,
        pending: Callable[[LiveJob], ImageToolResult],
    ) -> ImageToolResult:
        """Wait up to ``budget`` seconds; then the result, or ``pending(job)``.

        If the caller is cancelled, the job is stopped only when nobody else waits for it,
        nobody was promised it, and its request cannot have reached TTAPI yet.
        """
        job.waiters += 1
        job.tickers.add(ticker)
        ticker.follow(job.describe)
        try:
            with anyio.move_on_after(budget):
                await job.done.wait()
        except anyio.get_cancelled_exc_class():
            job.waiters -= 1
            job.tickers.discard(ticker)
            if job.waiters == 0 and not job.promised and not job.committed:
                log.info("job %s cancelled by its caller before reaching TTAPI", job.job_id)
                job.scope.cancel()
            raise
        job.waiters -= 1
        job.tickers.discard(ticker)
        if not job.done.is_set():
            job.promised = True
            return pending(job)
        if job.result is not None:
            return job.result
        raise ServiceError(job.error or f"job {job.job_id} ended without a result")


def interrupted_message(job_id: str) -> str:
    return (
        f"Job {job_id} was interrupted when the server stopped. Its request may already have "
        "completed upstream and been billed, but no image was received, so nothing was saved. "
        "Check your TTAPI usage before running it again."
    )


def args_without_secrets(args: dict[str, Any]) -> dict[str, Any]:
    """Request arguments as recorded: values only, data URIs shortened (they can be MBs)."""
    out: dict[str, Any] = {}
    for key, value in args.items():
        if isinstance(value, str) and value.startswith("data:") and len(value) > 80:
            value = value[:48] + f"...({len(value)} characters)"
        elif isinstance(value, list):
            value = [
                v[:48] + f"...({len(v)} characters)"
                if isinstance(v, str) and v.startswith("data:") and len(v) > 80 else v
                for v in value
            ]
        out[key] = value
    return out
