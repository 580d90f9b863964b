"""The route handlers E1–E5 and result downloads; the dispatcher in app.py calls them."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .account import JOB_PRICES, image_price
from .images import Limits, Upload, check_edit_images, closest_size
from .models import Fault
from .render import MIME, RenderSpec, render, render_b64_json
from .results import url_for
from .shapes import ApiError, RawJSON, json_response
from .streaming import stream_response
from .validate import (
    ImageParams,
    bad,
    check_prompt,
    usage_for,
    validate_e3,
    validate_images_request,
)

if TYPE_CHECKING:
    from .app import Emulator
    from .jobs import Job

INT_FIELDS = ("n", "output_compression", "partial_images")
_INDEXED = re.compile(r"image\[(\d+)\]")


def _base(request: Request) -> str:
    return str(request.base_url)


def _revised(params: ImageParams) -> str:
    return f"{params.prompt} — rendered by the emulator ({params.style or 'vivid'} style)"


async def images_response(
    em: Emulator, request: Request, params: ImageParams, fault: Fault | None,
    label: str, input_images: int = 0,
) -> dict[str, Any]:
    """The ImagesResponse for a validated request: b64 or url items, echo fields, usage."""
    width, height = params.dims
    url_form = params.response_format == "url" or (params.is_gpt and em.options.gpt_url_form)
    specs = [RenderSpec(prompt=params.prompt, model=label, width=width, height=height,
                        output_format=params.output_format,
                        transparent=params.background == "transparent",
                        compression=params.output_compression, index=i + 1, count=params.n,
                        texture=em.options.photo_sized)
             for i in range(params.n)]
    expired = fault is not None and fault.kind == "expired_url"
    items: list[dict[str, Any]] = []
    for spec in specs:
        if url_form:
            name = em.files.add(spec, em.options.url_ttl_seconds, expired=expired)
            item: dict[str, Any] = {"url": url_for(_base(request), name)}
        else:
            item = {"b64_json": RawJSON(await run_in_threadpool(render_b64_json, spec))}
        if params.model == "dall-e-3" or (params.is_gpt and url_form):
            item["revised_prompt"] = _revised(params)
        items.append(item)
    body: dict[str, Any] = {"created": int(time.time()), "data": items}
    if params.is_gpt and not url_form:
        body.update(background=params.background, output_format=params.output_format,
                    quality=params.quality, size=params.size,
                    usage=usage_for(params, input_images))
    return body


async def generations(em: Emulator, request: Request, body: dict[str, Any],
                      fault: Fault | None) -> Response:
    """E1: POST /v1/images/generations."""
    params = validate_images_request(body, "E1")
    _charge(em, params)
    if params.stream and not em.options.ignore_stream:
        return stream_response(params, params.model, params.partial_images,
                               em.options.stream_seconds, "image_generation", 0, fault)
    return json_response(await images_response(em, request, params, fault, params.model))


def _charge(em: Emulator, params: ImageParams) -> None:
    """The call's price leaves the balance, or the call is refused with 402."""
    width, height = params.dims
    price = image_price(params.model, params.quality, width, height, params.n)
    em.account.charge(price, f"{params.n} {params.model} image(s)")


def _form_value(name: str, value: str) -> Any:
    """Multipart text → the JSON type the field has on E1 (integers decimal, booleans words)."""
    if name in INT_FIELDS:
        if not re.fullmatch(r"-?[0-9]+", value):
            raise bad(name, f"Invalid type for '{name}': expected an integer, got '{value}'.")
        return int(value)
    if name == "stream":
        if value not in ("true", "false"):
            raise bad(name, f"Invalid type for 'stream': expected true or false, got '{value}'.")
        return value == "true"
    return value


async def edits(em: Emulator, request: Request, fields: list[tuple[str, Any]],
                fault: Fault | None) -> Response:
    """E2: POST /v1/images/edits (multipart already parsed into ordered parts)."""
    body: dict[str, Any] = {}
    plain: list[Upload] = []
    indexed: list[tuple[int, Upload]] = []
    mask: Upload | None = None
    for name, value in fields:
        if isinstance(value, Upload):
            up = value
            match = _INDEXED.fullmatch(name)
            if name in ("image", "image[]"):
                plain.append(up)
            elif match:
                indexed.append((int(match.group(1)), up))
            elif name == "mask":
                mask = up
            else:
                raise bad(name, f"Unknown parameter: '{name}'.", "unknown_parameter")
        elif name == "image" or name == "mask" or name.startswith("image["):
            raise ApiError(400, f"Invalid file '{name}': expected a file part, got text.",
                           code="invalid_image", param="mask" if name == "mask" else "image")
        else:
            body[name] = _form_value(name, value)
    images = plain + [up for _, up in sorted(indexed, key=lambda pair: pair[0])]
    params = validate_images_request(body, "E2")
    opts = em.options
    limits = Limits(opts.max_gpt_image_bytes, opts.max_dalle2_image_bytes, opts.max_mask_bytes)
    width, height = await run_in_threadpool(check_edit_images, images, mask, params.model, limits)
    if params.size == "auto":
        params.size = closest_size(width, height)
    _charge(em, params)
    label = f"{params.model} edit ({len(images)} image{'s' if len(images) > 1 else ''})"
    if params.stream and not em.options.ignore_stream:
        return stream_response(params, label, params.partial_images, em.options.stream_seconds,
                               "image_edit", len(images), fault)
    result = await images_response(em, request, params, fault, label, len(images))
    return json_response(result)


async def legacy_dalle3(em: Emulator, request: Request, body: dict[str, Any],
                        fault: Fault | None) -> Response:
    """E3: POST /openai/v1/images/generations, answered in the envelope."""
    params = validate_e3(body)
    _charge(em, params)
    data = await images_response(em, request, params, fault, "dall-e-3 (legacy route)")
    return json_response({"status": "SUCCESS", "message": "success", "data": data})


def _http_url(value: object) -> bool:
    return isinstance(value, str) and re.match(r"https?://[^\s/]+", value) is not None


async def submit_4o(em: Emulator, request: Request, body: dict[str, Any]) -> Response:
    """E4: POST /openai/4o-image/generations; undocumented fields are ignored."""
    prompt = body.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise bad("prompt", "prompt must be a string")
    prompt = check_prompt(prompt, 32000)
    refer = body.get("referImages")
    if refer is None:
        refer = []
    if not isinstance(refer, list) or not all(_http_url(u) for u in refer):
        raise bad("referImages", "referImages must be an array of http(s) URLs")
    if len(refer) > 16:
        raise bad("referImages", f"Too many referImages: {len(refer)}; at most 16 are allowed.")
    hook = body.get("hookUrl")
    if hook is not None and not _http_url(hook):
        raise bad("hookUrl", "hookUrl must be an http(s) URL")
    price = JOB_PRICES["gpt-4o-image"]
    em.account.cover(price, "a GPT-4o image job")
    job = em.jobs.submit(prompt, list(refer), hook, _base(request))
    em.account.hold(job.job_id, price)
    return json_response({"status": "SUCCESS", "message": "success",
                          "data": {em.options.job_id_key: job.job_id}})


async def fetch_4o(em: Emulator, request: Request, body: dict[str, Any],
                   fault: Fault | None) -> Response:
    """E5: GET or POST /openai/4o-image/fetch with `jobId` in the query or the JSON body."""
    query = request.query_params
    job_id = (query.get("jobId") or query.get("job_id") or body.get("jobId")
              or body.get("job_id"))
    if not job_id or not isinstance(job_id, str):
        raise ApiError(400, "jobId is required", param="jobId")
    job = em.jobs.get(job_id)
    if job is None or job.route != "4o":
        raise ApiError(404, "job not found", code=None, param="jobId")
    return job_answer(em, request, job, fault)


def job_answer(em: Emulator, request: Request, job: Job, fault: Fault | None) -> Response:
    """The job object, after the fault's forced status or expired result, if any."""
    shown: str | None = None
    if fault is not None and fault.job_status:
        em.jobs.force(job, fault.job_status)
        if job.status() not in ("SUCCESS", "FAILED"):
            shown = fault.job_status
    if fault is not None and fault.kind == "expired_url" and job.status() == "SUCCESS":
        em.jobs.expire_result(job)
    return json_response(em.jobs.job_object(job, _base(request), shown))


_EXPIRED = (b'<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code>'
            b"<Message>Signed expiry time has passed.</Message></Error>")
_MISSING = (b'<?xml version="1.0" encoding="utf-8"?><Error><Code>BlobNotFound</Code>'
            b"<Message>The specified blob does not exist.</Message></Error>")


async def download(em: Emulator, name: str, fault: Fault | None) -> Response:
    """GET /files/{name}: the image bytes, 403 once expired, 404 if unknown."""
    stored = em.files.get(name)
    if stored is None:
        return Response(_MISSING, status_code=404, media_type="application/xml")
    if fault is not None and fault.kind == "expired_url":
        em.files.expire(name)
    if time.monotonic() >= stored.expires_at:
        return Response(_EXPIRED, status_code=403, media_type="application/xml")
    data = await run_in_threadpool(render, stored.spec)
    return Response(data, media_type=MIME[stored.spec.output_format],
                    headers={"Cache-Control": "private, max-age=60"})
