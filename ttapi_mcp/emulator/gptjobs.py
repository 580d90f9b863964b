"""The async GPT route (§11.6): `POST /openai/gpt/generations` and `/openai/gpt/fetch`.

Encoded from the contract, not from the client's catalog. A field given for the wrong
model is a 400 envelope naming it; an invalid gpt-image-2-plus size is silently adjusted,
as TTAPI documents, and the image has the adjusted size. Jobs run the §7 lifecycle of the
4o jobs but live on their own route: the other route's fetch does not know them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from .account import JOB_PRICES
from .handlers import _base, _http_url, job_answer
from .models import Fault
from .shapes import ApiError, json_response
from .validate import bad, check_prompt, gpt2_size_ok

if TYPE_CHECKING:
    from .app import Emulator

JOB_MODELS = ("gpt-4o-image", "gpt-image-1", "gpt-image-1.5", "gpt-image-2", "gpt-image-2-plus")
DEFAULT_MODEL = "gpt-image-2"
RATIO_SIZES = {"1:1": (1024, 1024), "3:4": (1152, 1536), "4:3": (1536, 1152),
               "16:9": (1536, 864), "9:16": (864, 1536)}
KNOWN_FIELDS = frozenset({"prompt", "model", "referImages", "aspect_ratio", "size", "hookUrl"})


def adjust_size(size: str) -> tuple[int, int]:
    """TTAPI's silent adjustment: parse what it can, then clamp into the rule."""
    try:
        w, h = (max(1, int(part)) for part in size.lower().split("x", 1))
    except ValueError:
        return 1024, 1024
    if gpt2_size_ok(f"{w}x{h}"):
        return w, h
    for _ in range(64):  # bounded: each pass moves toward a valid size
        w, h = min(w, 3840), min(h, 3840)
        if max(w, h) > 3 * min(w, h):
            if w > h:
                h = -(-w // 3)
            else:
                w = -(-h // 3)
        pixels = w * h
        if pixels > 8_294_400 or pixels < 655_360:
            target = 8_294_400 if pixels > 8_294_400 else 655_360
            scale = (target / pixels) ** 0.5
            w, h = int(w * scale), int(h * scale)
        w, h = max(16, w // 16 * 16), max(16, h // 16 * 16)
        if gpt2_size_ok(f"{w}x{h}"):
            return w, h
        w, h = w + 16, h + 16
    return 1024, 1024


def _dims(body: dict[str, Any], model: str) -> tuple[int, int]:
    ratio, size = body.get("aspect_ratio"), body.get("size")
    if ratio is not None and model != "gpt-image-2":
        raise bad("aspect_ratio", f"aspect_ratio is not supported with model '{model}'.")
    if size is not None and model != "gpt-image-2-plus":
        raise bad("size", f"size is not supported with model '{model}'.")
    if ratio is not None:
        if ratio not in RATIO_SIZES:
            raise bad("aspect_ratio", f"Invalid aspect_ratio '{ratio}'. Supported values are: "
                                      f"{', '.join(RATIO_SIZES)}.")
        return RATIO_SIZES[ratio]
    if size is not None:
        if not isinstance(size, str):
            raise bad("size", "size must be a string like '3840x2160'")
        return adjust_size(size)
    return 1024, 1024


async def submit_gpt(em: Emulator, request: Request, body: dict[str, Any]) -> Response:
    """A1: POST /openai/gpt/generations; unknown fields refused (§11.9's pasted samples)."""
    for name in body:
        if name not in KNOWN_FIELDS:
            raise bad(name, f"Unknown parameter: '{name}'.", "unknown_parameter")
    prompt = body.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise bad("prompt", "prompt must be a string")
    prompt = check_prompt(prompt, 32000)
    model = body.get("model", DEFAULT_MODEL)
    if model not in JOB_MODELS:
        raise bad("model", f"Invalid model '{model}'. Supported values are: "
                           f"{', '.join(JOB_MODELS)}.")
    width, height = _dims(body, model)
    refer = body.get("referImages") or []
    if not isinstance(refer, list) or not all(_http_url(u) for u in refer):
        raise bad("referImages", "referImages must be an array of http(s) URLs")
    hook = body.get("hookUrl")
    if hook is not None and not _http_url(hook):
        raise bad("hookUrl", "hookUrl must be an http(s) URL")
    price = JOB_PRICES[model]
    em.account.cover(price, f"a {model} job")
    job = em.jobs.submit(prompt, list(refer), hook, _base(request), route="gpt", model=model,
                         size=(width, height))
    em.account.hold(job.job_id, price)
    return json_response({"status": "SUCCESS", "message": "success",
                          "data": {em.options.job_id_key: job.job_id}})


async def fetch_gpt(em: Emulator, request: Request, body: dict[str, Any],
                    fault: Fault | None) -> Response:
    """A2: GET or POST /openai/gpt/fetch with `jobId`; a 4o job is unknown here."""
    query = request.query_params
    job_id = query.get("jobId") or body.get("jobId")
    if not job_id or not isinstance(job_id, str):
        raise ApiError(400, "jobId is required", param="jobId")
    job = em.jobs.get(job_id)
    if job is None or job.route != "gpt":
        raise ApiError(404, "job not found", code=None, param="jobId")
    return job_answer(em, request, job, fault)
