"""Upstream jobs of any route: resumed after their server is gone, collected by one server.

An upstream job runs at TTAPI and finishes on its own: gpt4o_image's jobs on the GPT-4o
image route (kind "4o") and on the async GPT route (kind "gpt"); any other asynchronous
route the same way. However many servers share the store, exactly
one at a time polls TTAPI for such a job and downloads its result: the one holding the
job's collector claim (:meth:`ImageStore.claim_collector`, keyed by job id alone, with a
lease so a dead collector is replaced). The others follow the row.

A new asynchronous route gets the same behaviour by following :mod:`.collect4o`:

1. record the job with ``store.start_job(job_id, kind, ...)`` as soon as TTAPI returns its
   id (this server owns it; its lease is renewed while the server lives);
2. watch it as a :class:`~.runner.LiveJob` whose id is the upstream id (not ``local-``):
   the lease keeper then renews the job's collector claim, and its ``finish`` calls
   ``store.release_collector``;
3. before each poll, hold the claim (``store.claim_collector``); without it, follow the
   row (:class:`.crossproc.StoreWatch`) until it is finished or the claim is free; check
   the claim again right before downloading (raise :class:`CollectedElsewhere` if lost);
4. register how to resume watching one: ``register_upstream_kind("4o", resume_upstream)``. The
   sweep (:mod:`.recovery`) calls it for every open job of that kind whose owner and
   collector are both gone (import the module from :mod:`.recovery` so it registers).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ttapi_mcp.store import JobRecord

    from .common import Services

Resume = Callable[["Services", "JobRecord"], object]
_RESUME: dict[str, Resume] = {}


def register_upstream_kind(kind: str, resume: Resume) -> None:
    """Let the sweep resume open jobs of ``kind`` (the ``kind`` column of their rows)."""
    _RESUME[kind] = resume


def resume_for(kind: str) -> Resume | None:
    return _RESUME.get(kind)


class CollectedElsewhere(Exception):
    """Another live server holds this job's collector claim: follow its row instead."""
