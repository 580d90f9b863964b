"""Progress while a tool waits: the current phase, re-sent on a timer.

Clients drop a call that stays silent too long, and a person watching wants to see that
work goes on. So every waiting tool runs a :class:`Ticker`: it sends the phase at once
when it changes, and again (with the elapsed time) at least every
``progress_interval_seconds``, whatever the work is doing. Progress values are the
elapsed seconds, so they only ever grow, as MCP requires.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio

from .common import ProgressFn

Describe = Callable[[], str]


class Ticker:
    """What to say about the work in progress; see :func:`ticking`."""

    def __init__(self, progress: ProgressFn, budget: float | None) -> None:
        self._progress = progress
        self._budget = budget or None
        self._started = time.monotonic()
        self._last = -1.0
        self._describe: Describe = lambda: "working"
        self._wake = anyio.Event()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def follow(self, describe: Describe) -> None:
        """Describe the work with ``describe()`` from now on (e.g. a background job's phase)."""
        self._describe = describe
        self.poke()

    def set(self, phase: str) -> None:
        """A fixed phase, sent at once."""
        self.follow(lambda: phase)

    def poke(self) -> None:
        """Send the current phase now (the phase changed)."""
        self._wake.set()

    async def send(self) -> None:
        elapsed = max(self.elapsed, self._last + 0.001)  # strictly increasing
        self._last = elapsed
        done = min(elapsed, self._budget) if self._budget else elapsed
        await self._progress(done, self._budget, f"{self._describe()} ({elapsed:.0f} s elapsed)")

    async def run(self, interval: float) -> None:
        while True:
            await self.send()
            with anyio.move_on_after(interval):
                await self._wake.wait()
            self._wake = anyio.Event()


@asynccontextmanager
async def ticking(
    progress: ProgressFn, interval: float, budget: float | None = None
) -> AsyncIterator[Ticker]:
    """Run a :class:`Ticker` for the duration of the block."""
    ticker = Ticker(progress, budget)
    error: Exception | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker.run, interval)
        try:
            yield ticker
        except Exception as exc:  # re-raised below as itself, not as an ExceptionGroup
            error = exc
        finally:
            tg.cancel_scope.cancel()
    if error is not None:
        raise error
