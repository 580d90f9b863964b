"""The four tools: argument declarations for the calling model, and thin bodies.

Every argument is a pydantic Field whose description states the per-model rules
(worded from the catalog), closed sets are Literal enums so the JSON schema carries
them, and each body only turns the call into a service call and the result into
MCP content. Errors the caller can fix become ToolError with the full explanation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from mcp.server.elicitation import ElicitationResult
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Resolve
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import BeforeValidator, Field

from ttapi_mcp.catalog import MODELS
from ttapi_mcp.server.apps import UI_META
from ttapi_mcp.server.confirm import (
    ConfirmSpend,
    ask_edit,
    ask_generate,
    ask_gpt4o,
    confirm_cost_number,
    confirmed_quota,
)
from ttapi_mcp.server.results import to_call_result
from ttapi_mcp.server.startup import services_of
from ttapi_mcp.service.results import ImageToolResult, PreviewMode

if TYPE_CHECKING:  # the actions load on the first call: listing tools must not wait for them
    from ttapi_mcp.service import ProgressFn, Services

GenerateModel = Literal["gpt-image-1", "gpt-image-1.5", "gpt-image-2", "dall-e-2", "dall-e-3"]
EditModel = Literal["gpt-image-1", "gpt-image-1.5", "gpt-image-2", "dall-e-2"]
Quality = Literal["auto", "low", "medium", "high", "standard", "hd"]


def _model_lines(edit: bool) -> str:
    lines = []
    for spec in MODELS.values():
        if edit and spec.edit_prompt_max is None:
            continue
        limit = spec.edit_prompt_max if edit else spec.generate_prompt_max
        lines.append(f"{spec.name}: {spec.notes} Prompt up to {limit} characters.")
    return " ".join(lines)


def _sizes_text(edit: bool) -> str:
    parts = []
    for spec in MODELS.values():
        if edit and spec.edit_prompt_max is None:
            continue
        sizes = ", ".join(spec.sizes) if spec.sizes else "auto or WIDTHxHEIGHT (see model notes)"
        parts.append(f"{spec.name}: {sizes} (default {spec.default_size})")
    return "; ".join(parts)


def _qualities_text(edit: bool) -> str:
    parts = []
    for spec in MODELS.values():
        if edit and spec.edit_prompt_max is None:
            continue
        parts.append(f"{spec.name}: {', '.join(spec.qualities)}")
    return "; ".join(parts)


GPT_ONLY = "Only for gpt-image-* models; leave unset for DALL-E."
PREVIEW_DESC = (
    "Inline preview in the result: 'sheet' (one labelled grid of all images, each marked "
    "with its index; a single image is a thumbnail; the usual default), 'thumbnail' (one "
    "small JPEG per image, WebP if transparent), 'full' (the whole images inline; large), "
    "or 'none'. "
    "The saved file and its ttapi://images/{id} resource link are always returned."
)

PromptArg = Annotated[
    str,
    Field(description="What to draw, in any language. Be concrete: subject, setting, style, "
          "lighting, composition, any text to render (in quotes)."),
]
NArg = Annotated[
    int | None,
    Field(ge=1, le=10, description="Number of images, 1-10 (default 1). dall-e-3 accepts only 1."),
]
OutputFormatArg = Annotated[
    Literal["png", "jpeg", "webp"] | None,
    Field(description=f"File format of the result (default png). {GPT_ONLY}"),
]
CompressionArg = Annotated[
    int | None,
    Field(ge=0, le=100, description="Compression 0-100 for jpeg/webp (default 100); a value "
          f"below 100 needs output_format 'jpeg' or 'webp'. {GPT_ONLY}"),
]
BackgroundArg = Annotated[
    Literal["transparent", "opaque", "auto"] | None,
    Field(description="Background (default auto). 'transparent' needs output_format png or "
          f"webp, and is not available on gpt-image-2. {GPT_ONLY}"),
]
PreviewArg = Annotated[PreviewMode | None, Field(description=PREVIEW_DESC)]
PartialsArg = Annotated[
    int | None,
    Field(ge=0, le=3, description="Partial images per image, 0-3 (default from the server "
          "configuration, normally 0): the answer is streamed and each partial is saved at "
          "once as a preview file (announced in a progress note with its path and "
          "ttapi://partials/ URI). Each partial costs extra output tokens (about 100). "
          f"{GPT_ONLY}"),
]
WaitArg = Annotated[
    bool,
    Field(description="Wait for the images within the server's wait budget (default true, "
          "about 50 s, sending progress). If the work takes longer, or with false, the "
          "answer is status 'pending' with a job_id: the work goes on and its images are "
          "saved; call fetch_job(job_id, wait=true) to collect them. Do not repeat the call."),
]
DedupeArg = Annotated[
    bool,
    Field(description="true (default): if an identical call (same arguments, same input "
          "images) is still running, wait for it instead of paying again. false: always "
          "make a new, separately billed request (e.g. for another variation)."),
]
ConfirmCostArg = Annotated[
    float | None,
    BeforeValidator(confirm_cost_number),
    Field(description="Only after the server refused a call for lack of confirmation: the "
          "estimated quota the user agreed to spend (as quoted in the refusal). A value below "
          "the current estimate is refused the same way. Leave unset otherwise."),
]
Confirmation = ElicitationResult[ConfirmSpend]

COST_NOTE = (
    " Before sending, the server estimates the call's cost (quota; 1 USD = 100 quota) and "
    "reports it in progress and in the result's cost; it refuses calls beyond its budgets "
    "and may ask the user to confirm expensive ones (see confirm_cost)."
)
GENERATE_DESC = (
    "Create new images from a text prompt with an OpenAI image model through TTAPI. Costs "
    "money per image. Each image is saved to the server's output folder at once; the result "
    "gives its absolute path, a ttapi://images/{id} resource link (usable as an edit_image "
    "input) and a small preview." + COST_NOTE + " Models: " + _model_lines(edit=False)
)
EDIT_DESC = (
    "Edit or combine existing images with a prompt (inpainting with a mask, restyling, "
    "compositing several references). Costs money per image. Inputs may be file paths inside "
    "the allowed folders, ttapi://images/{id} URIs of earlier results, data:image/...;base64 "
    "URIs, or http(s) URLs. Results are saved like generate_image's." + COST_NOTE
    + " Models: " + _model_lines(edit=True)
)
GPT4O_DESC = (
    "Create one image as an asynchronous TTAPI job: GPT-4o image (default) or, with model, "
    "gpt-image-1, gpt-image-1.5, gpt-image-2 (with aspect_ratio) or gpt-image-2-plus (with "
    "a large custom size, up to 3840 px). Prefer it over generate_image for reference images "
    "given by URL, aspect ratios, very large sizes, or when a job that is collected later "
    "suits better than one long call; use generate_image for several images, exact options "
    "(quality, format, transparency) or editing. The job is recorded before this returns. "
    "With wait=true it waits up to the server's wait budget (about 50 s) sending progress; "
    "if the job is still running it answers status 'pending' with the job_id and the exact "
    "fetch_job call to make next." + COST_NOTE
)
JobModel = Literal["gpt-4o-image", "gpt-image-1", "gpt-image-1.5", "gpt-image-2",
                   "gpt-image-2-plus"]
FETCH_DESC = (
    "Collect a job whose call answered 'pending': a generate_image/edit_image job of this "
    "server, or of another server on the same store ('local-...'), or a gpt4o_image job "
    "(UUID, either route). Returns the saved images when done, the reason when it failed, "
    "or 'pending' again; with wait=true it waits up to the wait budget first. Images are "
    "downloaded and saved only once: later calls return the saved files. Works for any job "
    "id TTAPI knows on either job route, including jobs submitted elsewhere."
)

WRITES = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True
)
READS = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)

Output = Annotated[CallToolResult, ImageToolResult]


def progress_of(ctx: Context) -> ProgressFn:
    """Forward service progress to the client as MCP progress notifications."""

    async def report(done: float, total: float | None, message: str) -> None:
        # A lost progress note must not fail the call.
        with contextlib.suppress(Exception):
            await ctx.report_progress(done, total, message)

    return report


async def _run(
    ctx: Context,
    preview: PreviewMode | None,
    action: Callable[[Services, ProgressFn, int | None], Awaitable[ImageToolResult]],
) -> CallToolResult:
    """Run ``action`` with the thumbnail edge it should prepare while saving (or None)."""
    from ttapi_mcp.install.hints import missing_key_message
    from ttapi_mcp.service import ServiceError
    from ttapi_mcp.service.common import MissingKeyError

    services = await services_of(ctx.request_context.lifespan_context)
    settings = services.settings
    mode = preview or settings.preview
    edge = settings.thumbnail_size if mode in ("thumbnail", "sheet") else None
    try:
        result = await action(services, progress_of(ctx), edge)
    except MissingKeyError:
        raise ToolError(missing_key_message(client_name(ctx))) from None
    except ServiceError as exc:
        raise ToolError(str(exc)) from None
    return await to_call_result(result, mode, settings.thumbnail_size)


def client_name(ctx: Context) -> str | None:
    """The name the client gave in clientInfo (either protocol era), if any."""
    params = ctx.request_context.session.client_params
    return params.client_info.name if params is not None else None


def register_tools(server: MCPServer) -> None:
    """Declare the four tools on ``server``."""

    @server.tool(name="generate_image", title="Generate image", description=GENERATE_DESC,
                 annotations=WRITES, meta=UI_META)
    async def generate_image_tool(
        ctx: Context,
        prompt: PromptArg,
        model: Annotated[
            GenerateModel | None,
            Field(description="Image model (default from the server configuration, normally "
                  "gpt-image-1)."),
        ] = None,
        n: NArg = None,
        size: Annotated[
            str | None,
            Field(description="Image size, exact string 'WIDTHxHEIGHT' or 'auto'. Per model: "
                  + _sizes_text(edit=False) + "."),
        ] = None,
        quality: Annotated[
            Quality | None,
            Field(description="Quality per model: " + _qualities_text(edit=False)
                  + ". Higher is slower and costs more."),
        ] = None,
        style: Annotated[
            Literal["vivid", "natural"] | None,
            Field(description="dall-e-3 only: 'vivid' (default, dramatic) or 'natural'."),
        ] = None,
        background: BackgroundArg = None,
        output_format: OutputFormatArg = None,
        output_compression: CompressionArg = None,
        moderation: Annotated[
            Literal["low", "auto"] | None,
            Field(description=f"Content moderation strictness (default auto). {GPT_ONLY}"),
        ] = None,
        response_format: Annotated[
            Literal["url", "b64_json"] | None,
            Field(description="DALL-E only: how TTAPI returns the image ('url', default, or "
                  "'b64_json'); the image is saved either way. Leave unset for gpt-image-*."),
        ] = None,
        partial_images: PartialsArg = None,
        preview: PreviewArg = None,
        wait: WaitArg = True,
        dedupe: DedupeArg = True,
        confirm_cost: ConfirmCostArg = None,
        confirmation: Annotated[Confirmation, Resolve(ask_generate)] = None,  # type: ignore[assignment]
    ) -> Output:
        args: dict[str, Any] = {
            "prompt": prompt, "model": model, "n": n, "size": size, "quality": quality,
            "style": style, "background": background, "output_format": output_format,
            "output_compression": output_compression, "moderation": moderation,
            "response_format": response_format, "partial_images": partial_images,
        }
        from ttapi_mcp.service import generate_image

        return await _run(ctx, preview, lambda s, p, e: generate_image(
            s, args, p, wait=wait, dedupe=dedupe, preview_edge=e, confirmed=confirmed_quota(
                s.settings, "generate_image", args, confirmation, confirm_cost)))

    @server.tool(name="edit_image", title="Edit image", description=EDIT_DESC,
                 annotations=WRITES, meta=UI_META)
    async def edit_image_tool(
        ctx: Context,
        prompt: PromptArg,
        images: Annotated[
            list[str],
            Field(min_length=1, max_length=16, description=(
                "1-16 input images (gpt-image-*: PNG, JPEG or WebP, each under 25 MiB; "
                "dall-e-2: exactly one square PNG under 4 MiB). Each is a file path inside the "
                "allowed folders, a ttapi://images/{id} URI of an earlier result, a "
                "data:image/...;base64 URI, or an http(s) URL.")),
        ],
        mask: Annotated[
            str | None,
            Field(description="Optional mask for the first image, same reference forms: a PNG "
                  "under 4 MiB with alpha, the same size as the first image; fully transparent "
                  "pixels mark the area to change."),
        ] = None,
        model: Annotated[
            EditModel | None,
            Field(description="Image model (default from the server configuration, normally "
                  "gpt-image-1). dall-e-3 cannot edit."),
        ] = None,
        n: NArg = None,
        size: Annotated[
            str | None,
            Field(description="Output size, exact string. Per model: "
                  + _sizes_text(edit=True) + "."),
        ] = None,
        quality: Annotated[
            Quality | None,
            Field(description="Quality per model: " + _qualities_text(edit=True) + "."),
        ] = None,
        background: BackgroundArg = None,
        output_format: OutputFormatArg = None,
        output_compression: CompressionArg = None,
        input_fidelity: Annotated[
            Literal["high", "low"] | None,
            Field(description="How closely to keep the input's details such as faces and logos "
                  "(default low). gpt-image-1 and gpt-image-1.5 only (not gpt-image-2, not "
                  "dall-e-2)."),
        ] = None,
        moderation: Annotated[
            Literal["low", "auto"] | None,
            Field(description=f"Content moderation strictness (default auto). {GPT_ONLY}"),
        ] = None,
        partial_images: PartialsArg = None,
        preview: PreviewArg = None,
        wait: WaitArg = True,
        dedupe: DedupeArg = True,
        confirm_cost: ConfirmCostArg = None,
        confirmation: Annotated[Confirmation, Resolve(ask_edit)] = None,  # type: ignore[assignment]
    ) -> Output:
        args: dict[str, Any] = {
            "prompt": prompt, "images": images, "mask": mask, "model": model, "n": n,
            "size": size, "quality": quality, "background": background,
            "output_format": output_format, "output_compression": output_compression,
            "input_fidelity": input_fidelity, "moderation": moderation,
            "partial_images": partial_images,
        }
        from ttapi_mcp.service import edit_image

        return await _run(ctx, preview, lambda s, p, e: edit_image(
            s, args, p, wait=wait, dedupe=dedupe, preview_edge=e, confirmed=confirmed_quota(
                s.settings, "edit_image", args, confirmation, confirm_cost)))

    @server.tool(name="gpt4o_image", title="GPT-4o image job", description=GPT4O_DESC,
                 annotations=WRITES, meta=UI_META)
    async def gpt4o_image_tool(
        ctx: Context,
        prompt: Annotated[
            str,
            Field(description="What to draw, any language, up to 32000 characters. Start with "
                  "an explicit drawing verb, e.g. 'draw a ...'."),
        ],
        refer_images: Annotated[
            list[str] | None,
            Field(max_length=16, description="Up to 16 public http(s) URLs of reference "
                  "images; TTAPI downloads them itself, so local files and data URIs do not "
                  "work here."),
        ] = None,
        hook_url: Annotated[
            str | None,
            Field(description="Optional public http(s) URL that TTAPI notifies (POST, JSON) "
                  "when the job ends. Not needed: this server polls (and, when configured "
                  "with a public_base_url, gives TTAPI its own hook). If given, yours is "
                  "used instead of the server's own."),
        ] = None,
        wait: Annotated[
            bool,
            Field(description="Wait for the image within the server's wait budget (default "
                  "true). false: return the job id at once and call fetch_job later."),
        ] = True,
        model: Annotated[
            JobModel | None,
            Field(description="Job model (default gpt-4o-image, on the 4o-image route). "
                  "gpt-image-1, gpt-image-1.5, gpt-image-2 and gpt-image-2-plus run on "
                  "TTAPI's async GPT route."),
        ] = None,
        aspect_ratio: Annotated[
            Literal["1:1", "3:4", "4:3", "16:9", "9:16"] | None,
            Field(description="gpt-image-2 only: the shape of the image."),
        ] = None,
        size: Annotated[
            str | None,
            Field(description="gpt-image-2-plus only: WIDTHxHEIGHT, both sides multiples of "
                  "16, long side <= 3840, long/short <= 3, 655,360 to 8,294,400 pixels (e.g. "
                  "'3840x2160'). An invalid size is refused with the nearest valid one."),
        ] = None,
        confirm_cost: ConfirmCostArg = None,
        confirmation: Annotated[Confirmation, Resolve(ask_gpt4o)] = None,  # type: ignore[assignment]
    ) -> Output:
        from ttapi_mcp.service import submit_gpt4o

        return await _run(
            ctx, None,
            lambda s, p, _: submit_gpt4o(s, prompt, refer_images, hook_url, wait, p,
                                         model=model, aspect_ratio=aspect_ratio, size=size,
                                         confirmed=confirmed_quota(
                                             s.settings, "gpt4o_image",
                                             {"model": model, "size": size},
                                             confirmation, confirm_cost)),
        )

    @server.tool(name="fetch_job", title="Fetch job", description=FETCH_DESC, annotations=READS,
                 meta=UI_META)
    async def fetch_job_tool(
        ctx: Context,
        job_id: Annotated[
            str,
            Field(description="The job_id of a pending result: 'local-...' for "
                  "generate_image/edit_image jobs of this server, a UUID for gpt4o_image "
                  "jobs."),
        ],
        wait: Annotated[
            bool,
            Field(description="If the job is still running, wait for it within the server's "
                  "wait budget (default false: answer at once)."),
        ] = False,
    ) -> Output:
        from ttapi_mcp.service import fetch_job

        return await _run(ctx, None, lambda s, p, _: fetch_job(s, job_id, wait, p))
