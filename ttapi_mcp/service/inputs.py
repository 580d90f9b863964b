"""edit_image inputs: resolve every reference, then check them all against the catalog.

References are resolved one by one and every failure is kept, so the caller hears
about all bad inputs at once. Decoding for the transparent-pixel checks happens only
when the cheap header checks have passed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread

from ttapi_mcp.api import UploadFile
from ttapi_mcp.catalog import Violation, validate_edit
from ttapi_mcp.imagefacts import ImageFacts, has_transparent_pixel
from ttapi_mcp.inputs import InputError, InputImage, InputPolicy, cleanup_inputs, resolve_image_ref

from .common import Services


@dataclass
class EditInputs:
    """Resolved edit inputs: local files ready to stream, their facts, and any failures."""

    paths: list[Path] = field(default_factory=list)
    facts: list[ImageFacts] = field(default_factory=list)
    mask_path: Path | None = None
    mask_facts: ImageFacts | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def uploads(self) -> list[UploadFile]:
        pairs = enumerate(zip(self.paths, self.facts, strict=True))
        return [_upload(p, f, f"image-{i}") for i, (p, f) in pairs]

    @property
    def mask_upload(self) -> UploadFile | None:
        if self.mask_path is None or self.mask_facts is None:
            return None
        return _upload(self.mask_path, self.mask_facts, "mask")


def _upload(path: Path, facts: ImageFacts, stem: str) -> UploadFile:
    mime = facts.mime or "application/octet-stream"
    return UploadFile(path=path, filename=f"{stem}.{facts.extension}", content_type=mime)


@asynccontextmanager
async def resolve_edit_inputs(
    services: Services, refs: list[str], mask_ref: str | None
) -> AsyncIterator[EditInputs]:
    """Resolve all references; temporary copies (URLs, data URIs) are removed on exit."""
    policy = input_policy(services)
    store = services.store
    result = EditInputs()
    resolved: list[InputImage] = []
    try:
        for i, ref in enumerate(refs):
            try:
                image = await resolve_image_ref(ref, role="image", policy=policy, store=store)
            except InputError as exc:
                result.errors.append(f"images[{i}]: {exc}")
                continue
            resolved.append(image)
            result.paths.append(image.path)
            result.facts.append(image.facts)
        if mask_ref is not None:
            try:
                mask = await resolve_image_ref(mask_ref, role="mask", policy=policy, store=store)
            except InputError as exc:
                result.errors.append(f"mask: {exc}")
            else:
                resolved.append(mask)
                result.mask_path, result.mask_facts = mask.path, mask.facts
        yield result
    finally:
        await cleanup_inputs(resolved)


def input_policy(services: Services) -> InputPolicy:
    settings = services.settings
    return InputPolicy.for_output_dir(
        services.store.output_dir,
        list(settings.input_roots),
        allow_urls=settings.allow_url_inputs,
        allow_private_urls=settings.allow_private_urls,
        max_bytes=settings.max_input_bytes,
        # Paths only where the caller is this machine's user (stdio, static token): a
        # signed-in user names their images by URI, never by a file of the server.
        allow_paths=not settings.oauth_issuer,
    )


async def check_edit(
    services: Services, params: dict[str, Any], inputs: EditInputs
) -> list[Violation]:
    """Catalog rules for the parameters and (when all resolved) the images and mask."""
    max_bytes = services.settings.max_input_bytes
    if inputs.errors:
        # Image rules need every image; report the parameter rules with the input errors.
        return [
            v for v in validate_edit(params, [], None, max_image_bytes=max_bytes)
            if not v.param.startswith(("images", "mask"))
        ]
    first = validate_edit(params, inputs.facts, inputs.mask_facts, max_image_bytes=max_bytes)
    if first or params.get("model") not in ("dall-e-2",) and inputs.mask_path is None:
        return first
    mask_clear: bool | None = None
    image_clear: bool | None = None
    if inputs.mask_path is not None:
        mask_clear = await anyio.to_thread.run_sync(has_transparent_pixel, inputs.mask_path)
    elif inputs.facts and inputs.facts[0].has_alpha:
        image_clear = await anyio.to_thread.run_sync(has_transparent_pixel, inputs.paths[0])
    else:
        image_clear = False
    return validate_edit(
        params, inputs.facts, inputs.mask_facts, max_image_bytes=max_bytes,
        mask_has_transparent_pixel=mask_clear, image_has_transparent_pixel=image_clear,
    )
