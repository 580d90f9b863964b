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


def _specs(edit: bool) -> list[Any]:
    return [spec for spec in MODELS.values() if not edit or spec.edit_prompt_max is not None]


def _model_lines(edit: bool) -> str:
    return " ".join(f"{spec.name}: {spec.notes}" for spec in _specs(edit))


def _per_model(values: dict[str, str]) -> str:
    """'a, b: X; c: Y': models that allow the same values are named together."""
    grouped: dict[str, list[str]] = {}
    for name, allowed in values.items():
        grouped.setdefault(allowed, []).append(name)
    return "; ".join(f"{', '.join(names)}: {allowed}" for allowed, names in grouped.items())


def _sizes_text(edit: bool) -> str:
    return _per_model({spec.name: ", ".join(spec.sizes) if spec.sizes else "any valid WxH"
                       for spec in _specs(edit)})


def _qualities_text(edit: bool) -> str:
    return _per_model({spec.name: ", ".join(spec.qualities) for spec in _specs(edit)})


# Descriptions say what a model needs to choose well; the exact rules are enforced, and a
# wrong value gets one error listing every problem and what is allowed (nothing billed).
GPT_ONLY = "gpt-image-* only."
PREVIEW_DESC = (
    "Inline: sheet (one numbered grid; default), thumbnail (one each), full or none; "
    "paths and links always come."
)

PromptArg = Annotated[
    str,
    Field(description="What to draw, any language: subject, setting, style, lighting, text "
          "in quotes."),
]
NArg = Annotated[
    int | None,
    Field(ge=1, le=10, description="Images, default 1 (dall-e-3: only 1)."),
]
OutputFormatArg = Annotated[
    Literal["png", "jpeg", "webp"] | None,
    Field(description=f"Default png. {GPT_ONLY}"),
]
CompressionArg = Annotated[
    int | None,
    Field(ge=0, le=100, description=f"For jpeg or webp (default 100). {GPT_ONLY}"),
]
BackgroundArg = Annotated[
    Literal["transparent", "opaque", "auto"] | None,
    Field(description="Default auto; transparent needs png or webp (not gpt-image-2). "
          f"{GPT_ONLY}"),
]
ModerationArg = Annotated[
    Literal["low", "auto"] | None,
    Field(description=f"Default auto. {GPT_ONLY}"),
]
PreviewArg = Annotated[PreviewMode | None, Field(description=PREVIEW_DESC)]
PartialsArg = Annotated[
    int | None,
    Field(ge=0, le=3, description="Partial images per image (default 0), streamed and saved "
          f"as previews; about 100 output tokens each. {GPT_ONLY}"),
]
WaitArg = Annotated[
    bool,
    Field(description="Wait up to about 50 s; if still running (or false): 'pending' with a "
          "job_id to collect with fetch_job; do not repeat the call."),
]
DedupeArg = Annotated[
    bool,
    Field(description="Join an identical running call instead of paying again; false: a "
          "new, billed variation."),
]
ConfirmCostArg = Annotated[
    float | None,
    BeforeValidator(confirm_cost_number),
    Field(description="Only after a refusal asking for it: the quota the user agreed to."),
]
Confirmation = ElicitationResult[ConfirmSpend]

COST_NOTE = (
    " Costs money: estimated first (1 USD = 100 quota); over budget is refused; costly calls "
    "may need confirm_cost."
)
SAVED = ("Each image is saved at once; the result gives its path, a ttapi://images/{id} link "
         "(an edit_image input) and a preview.")
GENERATE_DESC = (
    "Create images from a text prompt with OpenAI image models via TTAPI. "
    f"{SAVED}{COST_NOTE} Models: " + _model_lines(edit=False)
)
EDIT_DESC = (
    "Edit or combine images with a prompt (mask inpainting, restyling, compositing). "
    f"{SAVED}{COST_NOTE} Models: " + _model_lines(edit=True)
)
GPT4O_DESC = (
    "One image as an asynchronous TTAPI job: gpt-4o-image (default), gpt-image-1, -1.5, -2 "
    "(aspect_ratio) or -2-plus (up to 3840 px). Suits reference images by URL, aspect ratios, "
    "very large sizes; generate_image suits several images, exact options, edits. If still "
    "running after the wait: 'pending' with the fetch_job call." + COST_NOTE
)
JobModel = Literal["gpt-4o-image", "gpt-image-1", "gpt-image-1.5", "gpt-image-2",
                   "gpt-image-2-plus"]
FETCH_DESC = (
    "Collect a job that answered 'pending' (any of the image tools, this server or another "
    "on the same store, or any TTAPI job id): its saved images, why it failed, or 'pending' "
    "again. Images are saved once; later calls return the same files."
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
    from ttapi_mcp.service import ServiceError
    from ttapi_mcp.service.common import MissingKeyError

    services = await services_of(ctx.request_context.lifespan_context)
    settings = services.settings
    mode = preview or settings.preview
    edge = settings.thumbnail_size if mode in ("thumbnail", "sheet") else None
    try:
        result = await action(services, progress_of(ctx), edge)
    except MissingKeyError:
        from ttapi_mcp.install.hints import missing_key_message  # loads the installer's tables

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
            Field(description="Default: the server's (normally gpt-image-1)."),
        ] = None,
        n: NArg = None,
        size: Annotated[
            str | None,
            Field(description="WIDTHxHEIGHT or auto. " + _sizes_text(edit=False) + "."),
        ] = None,
        quality: Annotated[
            Quality | None,
            Field(description=_qualities_text(edit=False) + ". Higher costs more."),
        ] = None,
        style: Annotated[
            Literal["vivid", "natural"] | None,
            Field(description="dall-e-3 only (default vivid)."),
        ] = None,
        background: BackgroundArg = None,
        output_format: OutputFormatArg = None,
        output_compression: CompressionArg = None,
        moderation: ModerationArg = None,
        response_format: Annotated[
            Literal["url", "b64_json"] | None,
            Field(description="DALL-E only (default url); saved either way."),
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
                "PNG, JPEG or WebP (dall-e-2: one square PNG): paths in the allowed folders, "
                "ttapi://images/{id} or data: URIs, http(s) URLs.")),
        ],
        mask: Annotated[
            str | None,
            Field(description="PNG with alpha, the first image's size; transparent pixels "
                  "mark what to change."),
        ] = None,
        model: Annotated[
            EditModel | None,
            Field(description="Default: the server's (normally gpt-image-1)."),
        ] = None,
        n: NArg = None,
        size: Annotated[
            str | None,
            Field(description="WIDTHxHEIGHT or auto. " + _sizes_text(edit=True) + "."),
        ] = None,
        quality: Annotated[
            Quality | None,
            Field(description=_qualities_text(edit=True) + "."),
        ] = None,
        background: BackgroundArg = None,
        output_format: OutputFormatArg = None,
        output_compression: CompressionArg = None,
        input_fidelity: Annotated[
            Literal["high", "low"] | None,
            Field(description="Keep faces and details (default low). gpt-image-1, -1.5 only."),
        ] = None,
        moderation: ModerationArg = None,
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
            Field(description="What to draw, any language. Start with a drawing verb: "
                  "'draw a ...'."),
        ],
        refer_images: Annotated[
            list[str] | None,
            Field(max_length=16, description="Public http(s) URLs of reference images (TTAPI "
                  "downloads them: no files or data URIs)."),
        ] = None,
        hook_url: Annotated[
            str | None,
            Field(description="A public URL TTAPI POSTs to when the job ends; not needed (the "
                  "server follows the job)."),
        ] = None,
        wait: Annotated[
            bool,
            Field(description="Wait up to the server's budget; false: return the job id at "
                  "once, collect it with fetch_job."),
        ] = True,
        model: Annotated[
            JobModel | None,
            Field(description="Default gpt-4o-image."),
        ] = None,
        aspect_ratio: Annotated[
            Literal["1:1", "3:4", "4:3", "16:9", "9:16"] | None,
            Field(description="gpt-image-2 only."),
        ] = None,
        size: Annotated[
            str | None,
            Field(description="gpt-image-2-plus only: WIDTHxHEIGHT, e.g. '3840x2160'; an "
                  "invalid size is refused with the nearest valid one."),
        ] = None,
        dedupe: DedupeArg = True,
        confirm_cost: ConfirmCostArg = None,
        confirmation: Annotated[Confirmation, Resolve(ask_gpt4o)] = None,  # type: ignore[assignment]
    ) -> Output:
        from ttapi_mcp.service import submit_gpt4o

        return await _run(
            ctx, None,
            lambda s, p, _: submit_gpt4o(s, prompt, refer_images, hook_url, wait, p,
                                         model=model, aspect_ratio=aspect_ratio, size=size,
                                         dedupe=dedupe,
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
            Field(description="The job_id of a 'pending' result."),
        ],
        wait: Annotated[
            bool,
            Field(description="Wait up to the server's budget if still running (default: "
                  "answer at once)."),
        ] = False,
    ) -> Output:
        from ttapi_mcp.service import fetch_job

        return await _run(ctx, None, lambda s, p, _: fetch_job(s, job_id, wait, p))
