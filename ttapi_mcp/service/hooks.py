"""Hook URLs for gpt4o_image jobs (both job routes): one unguessable, single-use token
per submission.

Why a token per submission and a path id of our own: the job id is only known after
TTAPI answers the submit, but the hook URL must be sent *with* the submit. So we make a
random path id and a ``secrets.token_urlsafe`` token, send
``{public_base_url}/hooks/4o/{hook_id}?token=...``, and map the hook id to the job id
once TTAPI returns it. Only the token's sha256 is kept (in memory and in the job's
row, so hooks still work after a restart); the token itself is never stored, logged or
shown. A token works once: a replay gets 403, as does a wrong one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING

from ttapi_mcp.filenames import new_short_id

if TYPE_CHECKING:  # not at import: the server declares its hook route before it loads these
    from .common import Services
    from .runner import HookEntry

HOOK_PATH = "/hooks/4o/{hook_id}"


def _registry(services: Services) -> dict[str, HookEntry]:
    return services.require_runner().hooks


def digest_of(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_hook(services: Services) -> tuple[str, str, str] | None:
    """(hook_url, hook_id, digest) when this server can receive hooks, else None."""
    base = services.hook_base_url
    if not base:
        return None
    from .runner import HookEntry

    hook_id, token = new_short_id(), secrets.token_urlsafe(32)
    digest = digest_of(token)
    _registry(services)[hook_id] = HookEntry(digest=digest)
    url = base.rstrip("/") + HOOK_PATH.format(hook_id=hook_id) + f"?token={token}"
    return url, hook_id, digest


def bind_hook(services: Services, hook_id: str, job_id: str) -> None:
    entry = _registry(services).get(hook_id)
    if entry is not None:
        entry.job_id = job_id


def restore_hook(services: Services, hook_id: str, digest: str, job_id: str) -> None:
    """Re-arm a hook of an unfinished job after a restart."""
    from .runner import HookEntry

    _registry(services)[hook_id] = HookEntry(digest=digest, job_id=job_id)


def forget_hook(services: Services, hook_id: str) -> None:
    _registry(services).pop(hook_id, None)


async def accept_hook(services: Services, hook_id: str, token: str) -> HookEntry | None:
    """The entry if ``token`` is right and unused (then it is used up), else None.

    A hook may reach any replica behind a balancer: one that did not hand it out finds
    it in the job's row (its token's sha256 is recorded there), and the row marks it
    used, so a token works once across all servers.
    """
    from .runner import HookEntry

    entry = _registry(services).get(hook_id)
    if entry is None:
        record = await services.store.job_of_hook(hook_id)
        digest = str((record.request_args or {}).get("hook_sha256") or "") if record else ""
        if record is None or not digest:
            return None
        entry = HookEntry(digest=digest, job_id=record.job_id)
    if entry.used or not token or not hmac.compare_digest(entry.digest, digest_of(token)):
        return None
    if entry.job_id is not None and not await services.store.use_hook(entry.job_id, hook_id):
        return None  # used already, here or by another server
    entry.used = True
    return entry


def redact_hook_url(url: str | None) -> str | None:
    """A hook URL for storage or display: the query (where the token is) masked."""
    if not url or "?" not in url:
        return url
    return url.split("?", 1)[0] + "?token=***"
