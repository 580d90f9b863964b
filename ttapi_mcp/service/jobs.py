"""gpt4o_image jobs (the GPT-4o image route and the async GPT route): submit, wait within
a budget, fetch, and save the result once.

A job id is recorded in the store the moment TTAPI returns it, before anything else
can fail, so it is never lost. Waiting stops before the client's own time-out (the
wait budget) and answers "pending" with the exact fetch_job call to make next.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit

import anyio

from ttapi_mcp.api import TTAPIError
from ttapi_mcp.catalog.asyncjobs import MODEL_4O, validate_async_job
from ttapi_mcp.store import JobRecord

from . import dedupe4o, money
from .collect4o import (
    UnknownJobError,
    check_once,
    pending_result,
    row_result,
    unknown_job,
    watch_4o,
)
from .common import ProgressFn, ServiceError, Services, no_progress, upstream_error
from .dedupe import call_key, user_key
from .hooks import bind_hook, new_hook
from .jobroutes import route_of_kind, route_of_params
from .localjobs import fetch_local
from .progress import ticking
from .results import ImageToolResult
from .runner import is_local

log = logging.getLogger("ttapi_mcp.service")

PROMPT_MAX = 32000
REFER_IMAGES_MAX = 16
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


def _check_url(name: str, value: str, problems: list[str]) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        problems.append(
            f"- {name} {value[:80]!r} is not an http(s) URL; TTAPI fetches these itself, so "
            "they must be public http(s) addresses (local files cannot be passed here)."
        )


def _validate_submit(prompt: str, refer_images: list[str], hook_url: str | None) -> list[str]:
    problems: list[str] = []
    if not prompt.strip():
        problems.append("- prompt is required: describe the image, e.g. 'draw a red fox'.")
    elif len(prompt) > PROMPT_MAX:
        problems.append(f"- prompt has {len(prompt)} characters; at most {PROMPT_MAX}.")
    if len(refer_images) > REFER_IMAGES_MAX:
        problems.append(
            f"- refer_images has {len(refer_images)} URLs; at most {REFER_IMAGES_MAX}."
        )
    for i, url in enumerate(refer_images):
        _check_url(f"refer_images[{i}]", url, problems)
    if hook_url is not None:
        _check_url("hook_url", hook_url, problems)
    return problems


async def submit_gpt4o(
    services: Services,
    prompt: str,
    refer_images: list[str] | None = None,
    hook_url: str | None = None,
    wait: bool = True,
    progress: ProgressFn = no_progress,
    *,
    model: str | None = None,
    aspect_ratio: str | None = None,
    size: str | None = None,
    confirmed: float | None = None,
    dedupe: bool = True,
) -> ImageToolResult:
    """Submit a job, record it at once, watch it in the background, wait (if asked).

    With ``dedupe``, an identical call attaches to the job it already has (see
    :mod:`.dedupe4o`): nothing is submitted or reserved for it.

    ``model`` other than gpt-4o-image goes to the async GPT route (§11.6), with the same
    recording, watching, hooks and recovery; its kind ("gpt") is kept in the job row.
    Its estimate is reserved first (``money.admit``) and settled when the job ends.

    In HTTP mode with ``public_base_url`` set, TTAPI is given a hook URL on this server
    (see :mod:`.hooks`), unless the caller passed their own ``hook_url``, which wins:
    then only polling tells this server the job ended.
    """
    refs = list(refer_images or [])
    problems = _validate_submit(prompt, refs, hook_url)
    problems += [f"- {v.message}" for v in validate_async_job(model, aspect_ratio, size)]
    if problems:
        head = "The job was not submitted (nothing was billed):"
        raise ServiceError("\n".join([head, *problems]))
    key = call_key("gpt4o_image", dedupe4o.key_args(
        {"prompt": prompt, "refer_images": refs or None, "hook_url": hook_url,
         "model": model or MODEL_4O, "aspect_ratio": aspect_ratio, "size": size}))
    key = user_key(key, services.store.current_user())  # never attach across users
    token = None
    if dedupe:
        existing, token = await dedupe4o.attach_or_claim(services, key)
        if existing is not None:
            return await _attach(services, existing, wait, progress)
    try:
        async with dedupe4o.holding(services, token):
            return await _submit(services, prompt, refs, hook_url, wait, progress,
                                 model=model, aspect_ratio=aspect_ratio, size=size,
                                 confirmed=confirmed, key=key if dedupe else None)
    finally:
        await dedupe4o.release(services, token)


async def _attach(
    services: Services, job_id: str, wait: bool, progress: ProgressFn
) -> ImageToolResult:
    """An identical call's job, as fetch_job answers for it (waiting, if asked)."""
    result = await fetch_job(services, job_id, wait=wait, progress=progress)
    note = dedupe4o.attached_note(job_id)
    result.message = f"{note} {result.message}" if result.message else note
    return result


async def _submit(
    services: Services, prompt: str, refs: list[str], hook_url: str | None, wait: bool,
    progress: ProgressFn, *, model: str | None, aspect_ratio: str | None, size: str | None,
    confirmed: float | None, key: str | None,
) -> ImageToolResult:
    settings = services.settings
    budget = settings.wait_budget_seconds if wait else 0.0
    async with ticking(progress, settings.progress_interval_seconds, budget) as ticker:
        client = services.require_client()
        params: dict[str, Any] = {"prompt": prompt}
        if refs:
            params["refer_images"] = refs
        if hook_url:
            params["hook_url"] = hook_url
        extra = {"model": model, "aspect_ratio": aspect_ratio, "size": size}
        params.update({k: v for k, v in extra.items() if v is not None})
        route = route_of_params(params)
        own_hook = None if hook_url else new_hook(services)
        sent = {**params, "hook_url": own_hook[0]} if own_hook else params
        quote = money.quote_job(settings, params.get("model"), params.get("size"))
        await money.announce(ticker, quote)
        ledger_id = await money.admit(services, quote, tool="gpt4o_image",
                                      model=str(params.get("model") or "gpt-4o-image"),
                                      route=route.request_route, confirmed=confirmed)
        request_id: str | None = None
        sending = False
        try:
            # Awaited: the job row is only written once TTAPI has answered with its id.
            request_id = await services.store.start_request(
                "gpt4o_image", route.request_route, params, wait=True
            )
            runner = services.require_runner()
            if runner.limiter.available_tokens < 1:
                ticker.set("queued: all upstream slots busy")
            async with runner.limiter:
                ticker.set(f"submitting the {route.label}")
                sending = True
                job_id = await route.submit(client, sent)
        except BaseException as exc:  # the reservation ends with the call: kept if billable
            billed = money.billing_of(exc)
            with anyio.CancelScope(shield=True):
                if request_id is not None:
                    await services.store.finish_request(request_id, "error", error=str(exc))
                await money.settle(services, ledger_id, outcome="error",
                                   billed=sending if billed is None else billed)
            if isinstance(exc, TTAPIError):
                raise upstream_error(exc) from None
            raise
        await money.attach_job(services, ledger_id, job_id)
        recorded: dict[str, Any] = {**params, "request_id": request_id}
        if own_hook:
            bind_hook(services, own_hook[1], job_id)
            recorded.update(hook_id=own_hook[1], hook_sha256=own_hook[2])
        with anyio.CancelScope(shield=True):
            await services.store.start_job(
                job_id, route.kind, prompt, "SUBMITTED", request_args=recorded,
                phase="submitted to TTAPI", dedupe_key=key,
            )
            await services.store.finish_request(request_id, "pending")
        log.info("%s %s submitted", route.label, job_id)
        if not wait:  # the caller collects it with fetch_job (or our hook wakes a watcher)
            return money.finish(services, pending_result(job_id, "SUBMITTED", params), quote)
        watcher = watch_4o(services, job_id, params, settings.poll_first_delay, route)
        result = await services.require_runner().wait(
            watcher, ticker, budget, lambda j: pending_result(j.job_id, j.upstream_status, params)
        )
        return money.finish(services, result.model_copy(), quote)


async def fetch_job(
    services: Services, job_id: str, wait: bool = False, progress: ProgressFn = no_progress
) -> ImageToolResult:
    """A job's state: local jobs (from the store, or live here), or TTAPI's jobs of either
    route (the image saved once, by one server)."""
    job_id = job_id.strip()
    if not _JOB_ID.match(job_id):
        raise ServiceError(
            f"job_id {job_id[:80]!r} is not a job id: pass the job_id a previous tool call "
            "returned (letters, digits, '-', '_', up to 128 characters)."
        )
    settings = services.settings
    budget = settings.wait_budget_seconds if wait else 0.0
    async with ticking(progress, settings.progress_interval_seconds, budget) as ticker:
        if is_local(job_id):
            return await fetch_local(services, job_id, wait, ticker)
        record = await services.store.get_job(job_id)
        if record is None and await services.store.held_by_another_user(job_id):
            raise unknown_job(job_id)  # the same answer as for an id nobody knows
        params = _params_of(record)
        done = await row_result(services, record, params)
        if done is not None:
            return done
        runner = services.require_runner()
        watcher = runner.find(job_id)
        route = route_of_kind(record.kind) if record is not None else None
        if watcher is None or not wait:
            checked, route = await check_once(services, job_id, record, params, route)
            if checked.status != "pending" or not wait:
                return checked
            if record is None:  # now recorded, with what check_once learnt of it
                params = _params_of(await services.store.get_job(job_id))
        watcher = watch_4o(services, job_id, params, settings.poll_interval, route)
        return await runner.wait(
            watcher, ticker, budget, lambda j: pending_result(j.job_id, j.upstream_status, params)
        )


def _params_of(record: JobRecord | None) -> dict[str, Any]:
    if record is None or not record.request_args:
        return {"prompt": record.prompt} if record and record.prompt else {}
    hidden = ("request_id", "hook_id", "hook_sha256", "hook_used")
    return {k: v for k, v in record.request_args.items() if k not in hidden}


__all__ = ["MODEL_4O", "UnknownJobError", "fetch_job", "submit_gpt4o", "watch_4o"]
