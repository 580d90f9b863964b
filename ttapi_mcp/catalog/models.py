"""The per-model table: what each model accepts, for validation and tool descriptions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ttapi_mcp.catalog.sizes import RULE_TEXT

MIB = 1024 * 1024
Tool = Literal["generate", "edit"]

# response_format: GPT models always answer base64; "b64_json" is tolerated, "url" refused.
GPT_OPTIONS = frozenset({"background", "output_format", "output_compression", "response_format",
                         "partial_images"})
PARTIAL_IMAGES_MAX = 3
GPT_SIZES = ("auto", "1024x1024", "1536x1024", "1024x1536")
GPT_QUALITIES = ("auto", "low", "medium", "high")


@dataclass(frozen=True)
class ModelSpec:
    """What one model accepts. Options not listed in `*_options` are refused for it."""

    name: str
    family: Literal["gpt", "dall-e"]
    beyond_seeds: bool
    generate_prompt_max: int
    edit_prompt_max: int | None  # None: the model cannot edit
    n_max: int
    sizes: tuple[str, ...] | None  # None: any WxH within `free_size` rules
    default_size: str
    qualities: tuple[str, ...]
    generate_options: frozenset[str]
    edit_options: frozenset[str] = frozenset()
    response_formats: tuple[str, ...] = ()
    edit_max_images: int = 0
    edit_formats: tuple[str, ...] = ()
    edit_max_bytes: int | None = None  # None: the configured max_input_bytes
    edit_square_png: bool = False
    notes: str = ""
    values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def _gpt(name: str, *, beyond: bool, fidelity: bool = True, free_size: bool = False,
         transparent: bool = True, notes: str = "") -> ModelSpec:
    edit_options = GPT_OPTIONS | {"moderation"} | ({"input_fidelity"} if fidelity else frozenset())
    backgrounds = ("transparent", "opaque", "auto") if transparent else ("opaque", "auto")
    return ModelSpec(
        name=name,
        family="gpt",
        beyond_seeds=beyond,
        generate_prompt_max=32000,
        edit_prompt_max=32000,
        n_max=10,
        sizes=None if free_size else GPT_SIZES,
        default_size="auto",
        qualities=GPT_QUALITIES,
        generate_options=GPT_OPTIONS | {"moderation"},
        edit_options=edit_options,
        response_formats=("b64_json",),
        edit_max_images=16,
        edit_formats=("png", "jpeg", "webp"),
        notes=notes,
        values={
            "background": backgrounds,
            "output_format": ("png", "jpeg", "webp"),
            "moderation": ("low", "auto"),
            "input_fidelity": ("high", "low"),
        },
    )


MODELS: dict[str, ModelSpec] = {
    "gpt-image-1": _gpt(
        "gpt-image-1", beyond=False,
        notes="Best quality; slow at high quality (minutes).",
    ),
    "gpt-image-1.5": _gpt("gpt-image-1.5", beyond=False, notes="As gpt-image-1."),
    "gpt-image-2": _gpt(
        "gpt-image-2", beyond=False, free_size=True, fidelity=False, transparent=False,
        notes="Newest; any size WIDTHxHEIGHT in multiples of 16 up to 3840 px; no "
        "transparency.",
    ),
    "dall-e-2": ModelSpec(
        name="dall-e-2",
        family="dall-e",
        beyond_seeds=False,
        generate_prompt_max=1000,
        edit_prompt_max=1000,
        n_max=10,
        sizes=("256x256", "512x512", "1024x1024"),
        default_size="1024x1024",
        qualities=("auto", "standard"),
        generate_options=frozenset({"response_format"}),
        edit_options=frozenset({"response_format"}),
        response_formats=("url", "b64_json"),
        edit_max_images=1,
        edit_formats=("png",),
        edit_max_bytes=4 * MIB,
        edit_square_png=True,
        notes="Cheap and fast; edits one square PNG under 4 MiB.",
    ),
    "dall-e-3": ModelSpec(
        name="dall-e-3",
        family="dall-e",
        beyond_seeds=False,
        generate_prompt_max=4000,
        edit_prompt_max=None,
        n_max=1,
        sizes=("1024x1024", "1792x1024", "1024x1792"),
        default_size="1024x1024",
        qualities=("auto", "standard", "hd"),
        generate_options=frozenset({"style", "response_format"}),
        response_formats=("url", "b64_json"),
        notes="Follows prompts closely; n=1; cannot edit.",
        values={"style": ("vivid", "natural")},
    ),
}


def upstream_options(params: Mapping[str, Any]) -> dict[str, Any]:
    """The fields to send: unset ones left out, and `quality: auto` dropped for DALL-E."""
    spec = MODELS[params["model"]]
    sent = {k: v for k, v in params.items() if v is not None}
    if spec.family == "dall-e" and sent.get("quality") == "auto":
        del sent["quality"]
    if spec.family == "gpt":
        sent.pop("response_format", None)
        if sent.get("partial_images"):  # §11.4: partials come only in a stream
            sent["stream"] = True
        else:
            sent.pop("partial_images", None)
    return sent


def catalog_as_json() -> dict[str, Any]:
    """The catalog for agents (the ttapi://models resource)."""
    models = {}
    for spec in MODELS.values():
        models[spec.name] = {
            "documented_by_ttapi": not spec.beyond_seeds,
            "notes": spec.notes,
            "generate": {
                "prompt_max_chars": spec.generate_prompt_max,
                "n": [1, spec.n_max],
                "sizes": list(spec.sizes) if spec.sizes else f"auto or {RULE_TEXT}",
                "default_size": spec.default_size,
                "qualities": list(spec.qualities),
                "options": _options_json(spec, spec.generate_options),
            },
            "edit": None if spec.edit_prompt_max is None else {
                "prompt_max_chars": spec.edit_prompt_max,
                "images": [1, spec.edit_max_images],
                "image_formats": list(spec.edit_formats),
                "image_max_bytes": spec.edit_max_bytes or "max_input_bytes setting",
                "square_png_only": spec.edit_square_png,
                "options": _options_json(spec, spec.edit_options),
            },
        }
    return {
        "models": models,
        "rules": [
            "background 'transparent' needs output_format png or webp",
            "output_compression below 100 needs output_format jpeg or webp",
            "a mask is a PNG under 4 MiB with alpha, the size of the first image, and marks "
            "the area to edit with fully transparent pixels",
        ],
    }


def _options_json(spec: ModelSpec, options: frozenset[str]) -> dict[str, list[str]]:
    return {o: list(_option_values(spec, o)) for o in sorted(options)}


def _option_values(spec: ModelSpec, option: str) -> tuple[str, ...]:
    if option == "output_compression":
        return ("0-100",)
    if option == "partial_images":
        return (f"0-{PARTIAL_IMAGES_MAX}",)
    if option == "response_format":
        return spec.response_formats
    return spec.values.get(option, ())
