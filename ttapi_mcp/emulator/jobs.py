"""GPT-4o image jobs (§4.4, §4.5, §7): time-based states and one hook POST per finished job.

A job's state is computed from the clock on every fetch, so no background work is needed
for it; only the hook notification runs as a task in the server's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .models import EmulatorOptions, HookDelivery, RequestRecord
from .render import RenderSpec
from .results import FileStore, url_for

TERMINAL = ("SUCCESS", "FAILED")


@dataclass
class Job:
    """One submitted job and the timing it was given at submit time."""

    job_id: str
    prompt: str
    refer_images: list[str]
    hook_url: str | None
    base_url: str
    pending_seconds: float
    queue_seconds: float
    outcome: str
    failure_message: str
    created: float = field(default_factory=time.monotonic)
    created_wall: float = field(default_factory=time.time)
    forced: str | None = None
    forced_wall: float | None = None
    file_name: str | None = None
    cancelled: bool = False
    ended: asyncio.Event | None = None
    route: str = "4o"  # "gpt": the async GPT route (§11.6); each route fetches only its own
    model: str = "gpt-4o-image"
    size: tuple[int, int] = (1024, 1024)

    def status(self) -> str:
        if self.forced is not None:
            return self.forced
        elapsed = time.monotonic() - self.created
        if elapsed < self.pending_seconds:
            return "PENDING_QUEUE"
        if elapsed < self.pending_seconds + self.queue_seconds:
            return "ON_QUEUE"
        return "SUCCESS" if self.outcome == "success" else "FAILED"

    def finish_time(self) -> str:
        wall = self.forced_wall or (self.created_wall + self.pending_seconds + self.queue_seconds)
        return datetime.fromtimestamp(wall, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


class JobManager:
    """Jobs by id, their result files and hook deliveries."""

    def __init__(self, files: FileStore, options: Callable[[], EmulatorOptions],
                 record: Callable[[RequestRecord], None]) -> None:
        self._files = files
        self._options = options
        self._record = record
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.hook_deliveries: list[HookDelivery] = []

    def submit(self, prompt: str, refer_images: list[str], hook_url: str | None,
               base_url: str, *, route: str = "4o", model: str = "gpt-4o-image",
               size: tuple[int, int] = (1024, 1024)) -> Job:
        opts = self._options()
        job = Job(job_id=str(uuid.uuid4()), prompt=prompt, refer_images=refer_images,
                  hook_url=hook_url, base_url=base_url,
                  pending_seconds=opts.pending_queue_seconds, queue_seconds=opts.job_seconds,
                  outcome=opts.job_outcome, failure_message=opts.job_failure_message,
                  route=route, model=model, size=size)
        with self._lock:
            self._jobs[job.job_id] = job
        if hook_url:
            job.ended = asyncio.Event()
            task = asyncio.get_running_loop().create_task(self._hook(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return job

    def ended(self) -> list[tuple[str, bool]]:
        """(id, succeeded) of every job that has ended."""
        with self._lock:
            jobs = list(self._jobs.values())
        return [(j.job_id, j.status() == "SUCCESS") for j in jobs if j.status() in TERMINAL]

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def force(self, job: Job, status: str) -> None:
        """Fault hook: a terminal status sticks; a queued one is shown once."""
        if job.status() in TERMINAL or status not in TERMINAL:
            return
        job.forced, job.forced_wall = status, time.time()
        if status == "FAILED":
            job.outcome = "failed"
        if job.ended is not None:
            job.ended.set()

    def expire_result(self, job: Job) -> None:
        if job.file_name is None:
            self._ensure_file(job)
        if job.file_name is not None:
            self._files.expire(job.file_name)

    def _ensure_file(self, job: Job) -> None:
        if job.file_name is None:
            spec = RenderSpec(prompt=job.prompt, model=job.model, width=job.size[0],
                              height=job.size[1])
            job.file_name = self._files.add(spec, self._options().url_ttl_seconds)

    def job_object(self, job: Job, base_url: str, status: str | None = None) -> dict[str, Any]:
        """The §4.5 job object, identical for fetch and hook."""
        status = status or job.status()
        image_url = None
        if status == "SUCCESS":
            self._ensure_file(job)
            assert job.file_name is not None
            image_url = url_for(base_url, job.file_name)
        message = {"SUCCESS": "success", "FAILED": job.failure_message}.get(status)
        return {
            "status": status,
            "message": message,
            "jobId": job.job_id,
            "data": {
                "prompt": job.prompt,
                "referImages": job.refer_images,
                "imageUrl": image_url,
                "quota": "0" if status == "FAILED" else "2",
                "finishTime": job.finish_time() if status in TERMINAL else None,
                "hookUrl": job.hook_url,
            },
        }

    async def _hook(self, job: Job) -> None:
        """Wait for the job to end, then POST its object to hookUrl once (no retry)."""
        remaining = job.pending_seconds + job.queue_seconds - (time.monotonic() - job.created)
        assert job.ended is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(job.ended.wait(), timeout=max(0.0, remaining))
        if job.cancelled or job.hook_url is None:
            return
        body = self.job_object(job, job.base_url)
        delivery = HookDelivery(job_id=job.job_id, url=job.hook_url, body=body)
        import httpx2  # deferred: only needed when a hook is configured

        try:
            async with httpx2.AsyncClient(timeout=self._options().hook_timeout) as client:
                resp = await client.post(job.hook_url, json=body)
            delivery.status = resp.status_code
        except Exception as exc:  # any transport failure is recorded, never retried
            delivery.error = f"{type(exc).__name__}: {exc}"
        if job.cancelled:
            return
        self.hook_deliveries.append(delivery)
        self._record(RequestRecord(method="POST", path=job.hook_url, route="hook",
                                   status=delivery.status or 0,
                                   headers={"content-type": "application/json"}, json=body))

    def reset(self) -> None:
        with self._lock:
            for job in self._jobs.values():
                job.cancelled = True
            self._jobs.clear()
        self.hook_deliveries.clear()
