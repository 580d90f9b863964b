"""The two asynchronous job routes and their per-model rules (§4.4, §11.6).

``gpt4o_image`` sends gpt-4o-image to the 4o-image route and the GPT image models to
``/openai/gpt/generations``; ``aspect_ratio`` belongs to gpt-image-2 and ``size`` to
gpt-image-2-plus. One image per job on both routes.
"""

from __future__ import annotations

from typing import Literal

from ttapi_mcp.catalog.rules import Violation
from ttapi_mcp.catalog.sizes import RULE_TEXT, free_size_problem, nearest_free_size

JobKind = Literal["4o", "gpt"]
MODEL_4O = "gpt-4o-image"
ASYNC_MODELS: dict[str, str] = {
    MODEL_4O: "GPT-4o image on TTAPI's 4o-image route (the default): good at detailed "
    "instructions and reference images; no size control.",
    "gpt-image-1": "gpt-image-1 as a job on the async GPT route.",
    "gpt-image-1.5": "gpt-image-1.5 as a job on the async GPT route.",
    "gpt-image-2": "gpt-image-2 as a job on the async GPT route; takes aspect_ratio.",
    "gpt-image-2-plus": "gpt-image-2 with large custom sizes (up to 3840 px) on the async GPT "
    "route; takes size.",
}
ASPECT_RATIOS = ("1:1", "3:4", "4:3", "16:9", "9:16")
ASPECT_RATIO_MODEL = "gpt-image-2"
SIZE_MODEL = "gpt-image-2-plus"


def kind_of_model(model: str | None) -> JobKind:
    """Which route a job of ``model`` goes to: '4o' (4o-image) or 'gpt' (async GPT)."""
    return "4o" if model in (None, MODEL_4O) else "gpt"


def validate_async_job(
    model: str | None, aspect_ratio: str | None, size: str | None
) -> list[Violation]:
    """Every rule the call breaks; TTAPI would silently adjust a bad size, we refuse it."""
    out: list[Violation] = []
    name = model or MODEL_4O
    if name not in ASYNC_MODELS:
        out.append(Violation("model", model, f"model {model!r} is not a job model; use one of: "
                             f"{', '.join(ASYNC_MODELS)}."))
        return out
    if aspect_ratio is not None:
        if name != ASPECT_RATIO_MODEL:
            out.append(Violation("aspect_ratio", aspect_ratio, f"aspect_ratio is only for "
                                 f"model {ASPECT_RATIO_MODEL!r} (not {name!r}); leave it out "
                                 "or change the model."))
        elif aspect_ratio not in ASPECT_RATIOS:
            out.append(Violation("aspect_ratio", aspect_ratio, f"aspect_ratio {aspect_ratio!r} "
                                 f"is not allowed; allowed: {', '.join(ASPECT_RATIOS)}."))
    if size is not None:
        if name != SIZE_MODEL:
            out.append(Violation("size", size, f"size is only for model {SIZE_MODEL!r} (not "
                                 f"{name!r}); use aspect_ratio with gpt-image-2, or generate_image "
                                 "for exact sizes."))
        else:
            problem = free_size_problem(size) if size != "auto" else "must be WIDTHxHEIGHT"
            if problem:
                nearest = nearest_free_size(size)
                closest = f" The nearest valid size is '{nearest}'." if nearest else ""
                out.append(Violation("size", size, f"size {size[:40]!r} is not allowed for "
                                     f"{SIZE_MODEL}: {problem} (rule: {RULE_TEXT}).{closest}"))
    return out
