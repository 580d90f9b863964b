"""The price table: quota per image for each model, quality and size, with its sources.

TTAPI publishes no per-model price table (contract §11.8): it says only that 1 USD =
100 quota, that a GPT-4o image job charges 2 quota on success and 0 on failure, that
"different sizes consume different quota", and (older pages) that the legacy dall-e-3
route cost 25% of OpenAI's price. So every default below is OpenAI's own list price per
image converted at 1 USD = 100 quota: an upper estimate of what a reseller charges, not
a quote. Users replace any number with the ``prices`` setting; every place that shows a
price calls it an estimate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .models import GPT_SIZES, MODELS

QUOTA_PER_USD = 100
"""TTAPI: 1 USD = 100 quota [docs-2026]."""
MODEL_4O = "gpt-4o-image"
MODEL_2_PLUS = "gpt-image-2-plus"
"""Only a job model (the async GPT route): gpt-image-2 with large custom sizes."""
MAX_PRICE = 10_000.0
"""Highest price accepted for one image (100 USD): anything above is a typo."""
MAX_FACTOR = 10.0

EXTRAS = {
    "input_image": "quota per input image of an edit (GPT models: image input tokens)",
    "input_fidelity_high": "extra quota per input image with input_fidelity 'high'",
    "partial_image": "quota per streamed partial image (about 100 output tokens each)",
    "legacy_route_factor": "multiplier for dall-e-3 on TTAPI's legacy route (E3)",
    "job": "quota per job on the async job routes (gpt4o_image); gpt-image-2-plus: per "
    "1024x1024 of area",
}


def _gpt(low: tuple[float, float], medium: tuple[float, float],
         high: tuple[float, float]) -> dict[str, Any]:
    """OpenAI's per-image USD prices (square, then 1536x1024 / 1024x1536) as quota."""
    table: dict[str, Any] = {}
    for quality, (square, wide) in (("low", low), ("medium", medium), ("high", high)):
        table[quality] = {
            "1024x1024": round(square * QUOTA_PER_USD, 2),
            "1536x1024": round(wide * QUOTA_PER_USD, 2),
            "1024x1536": round(wide * QUOTA_PER_USD, 2),
        }
    table.update(input_image=1.0, input_fidelity_high=4.0, partial_image=0.4)
    return table


DEFAULT_PRICES: dict[str, dict[str, Any]] = {
    "gpt-image-1": _gpt((0.011, 0.016), (0.042, 0.063), (0.167, 0.25)),
    "gpt-image-1-mini": _gpt((0.005, 0.006), (0.011, 0.015), (0.036, 0.052)),
    "gpt-image-1.5": _gpt((0.009, 0.013), (0.034, 0.05), (0.133, 0.2)),
    "gpt-image-2": _gpt((0.011, 0.016), (0.042, 0.063), (0.167, 0.25)),
    "dall-e-2": {"standard": {"256x256": 1.6, "512x512": 1.8, "1024x1024": 2.0}},
    "dall-e-3": {
        "standard": {"1024x1024": 4.0, "1792x1024": 8.0, "1024x1792": 8.0},
        "hd": {"1024x1024": 8.0, "1792x1024": 12.0, "1024x1792": 12.0},
        "legacy_route_factor": 0.25,
    },
    MODEL_4O: {"job": 2.0},
    MODEL_2_PLUS: {"job": 16.7},
}
# A job on the async GPT route has no quality control: priced as the model's dearest image.
for _model in ("gpt-image-1", "gpt-image-1.5", "gpt-image-2"):
    DEFAULT_PRICES[_model]["job"] = max(DEFAULT_PRICES[_model]["high"].values())

SOURCES: dict[str, str] = {
    "gpt-image-1": "OpenAI's list price per image (low/medium/high, square and 1536 px) "
    "at 1 USD = 100 quota; input images ~1,000 image tokens, high input_fidelity ~4,000 "
    "more, a partial image ~100 output tokens",
    "gpt-image-1-mini": "OpenAI's list price per image at 1 USD = 100 quota",
    "gpt-image-1.5": "OpenAI's list price per image at 1 USD = 100 quota",
    "gpt-image-2": "no published price: assumed as gpt-image-1; other sizes are scaled "
    "from 1024x1024 by pixel area",
    "dall-e-2": "OpenAI's list price per image at 1 USD = 100 quota",
    "dall-e-3": "OpenAI's list price per image at 1 USD = 100 quota; TTAPI's legacy route "
    "'25% of OpenAI's price' (older TTAPI docs)",
    MODEL_4O: "TTAPI: a GPT-4o image job charges 2 quota on success, 0 on failure",
    MODEL_2_PLUS: "no published price: gpt-image-1's high 1024x1024 price per 1024x1024 of "
    "area (its sizes reach 3840x2160, about 8 times that)",
}

RULES = [
    "1 USD = 100 quota (TTAPI). TTAPI publishes no per-model price table: these are "
    "estimates, replaceable with the 'prices' setting.",
    "quality 'auto' is counted as the model's most expensive quality, size 'auto' as its "
    "most expensive size: the most such a call can cost.",
    "a call is estimated as n x the per-image price, plus input images and partial images "
    "where they cost extra; a gpt4o_image job at its model's 'job' price.",
]


def _priced_models() -> tuple[str, ...]:
    return (*MODELS, MODEL_4O, MODEL_2_PLUS)


def _allowed_sizes(model: str) -> tuple[str, ...] | None:
    """Sizes a price may be given for; None: any WxH (gpt-image-2)."""
    if model == "gpt-image-2":
        return None
    spec = MODELS.get(model)
    sizes = spec.sizes if spec is not None else GPT_SIZES
    return tuple(s for s in (sizes or ()) if s != "auto")


def _allowed_keys(model: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(qualities, extras) a model's entry may hold."""
    if model in (MODEL_4O, MODEL_2_PLUS):
        return (), ("job",)
    spec = MODELS[model]
    qualities = tuple(q for q in spec.qualities if q != "auto")
    if spec.family == "gpt":
        return qualities, ("input_image", "input_fidelity_high", "partial_image", "job")
    extras = ("legacy_route_factor",) if model == "dall-e-3" else ()
    return qualities, extras


def _number(path: str, value: Any, highest: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{path} must be a number of quota, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 0 or number > highest:
        raise ValueError(f"{path} must be between 0 and {highest:g}, got {value!r}")
    return number


def merge_prices(overrides: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The defaults with ``overrides`` laid over them, every value checked.

    Raises ``ValueError`` naming the first bad entry by its path (``prices.MODEL...``)
    and what is allowed there.
    """
    table = {model: {k: dict(v) if isinstance(v, dict) else v for k, v in entry.items()}
             for model, entry in DEFAULT_PRICES.items() if model in _priced_models()}
    if overrides is None:
        return table
    if not isinstance(overrides, Mapping):
        raise ValueError(f"prices must be an object of model -> prices, got {overrides!r}")
    for model, entry in overrides.items():
        if model not in _priced_models():
            raise ValueError(f"prices: unknown model {model!r}; known: "
                             f"{', '.join(_priced_models())}")
        if not isinstance(entry, Mapping):
            raise ValueError(f"prices.{model} must be an object, got {entry!r}")
        qualities, extras = _allowed_keys(model)
        for key, value in entry.items():
            path = f"prices.{model}.{key}"
            if key in extras:
                highest = MAX_FACTOR if key == "legacy_route_factor" else MAX_PRICE
                table[model][key] = _number(path, value, highest)
            elif key in qualities:
                table[model][key] = _merge_sizes(model, path, value, table[model].get(key, {}))
            else:
                allowed = ", ".join([*qualities, *extras])
                raise ValueError(f"{path}: unknown key {key!r}; allowed: {allowed}")
    return table


def _merge_sizes(model: str, path: str, value: Any, current: dict[str, float]) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{path} must be an object of size -> quota per image, got {value!r}")
    sizes = _allowed_sizes(model)
    merged = dict(current)
    for size, price in value.items():
        if sizes is not None and size not in sizes:
            raise ValueError(f"{path}: unknown size {size!r}; allowed: {', '.join(sizes)}")
        if sizes is None and not _is_wxh(size):
            raise ValueError(f"{path}: size {size!r} is not WIDTHxHEIGHT")
        merged[size] = _number(f"{path}.{size}", price, MAX_PRICE)
    return merged


def _is_wxh(size: str) -> bool:
    width, sep, height = str(size).partition("x")
    return bool(sep) and width.isdigit() and height.isdigit() and int(width) * int(height) > 0


def price_per_image(
    table: Mapping[str, Any], model: str, quality: str | None, size: str | None
) -> tuple[float, str]:
    """Quota for one image and how it was found; ``KeyError`` for an unpriced model.

    'auto' (or unset) quality counts as the dearest quality and 'auto' size as the
    dearest size, so the estimate is the most the call can cost.
    """
    spec = MODELS[model]
    entry = table[model]
    qualities, _ = _allowed_keys(model)
    notes: list[str] = []
    if spec.family == "dall-e":
        chosen_quality = "hd" if quality == "hd" else "standard"
    elif quality in qualities:
        chosen_quality = str(quality)
    else:
        chosen_quality = max(qualities, key=lambda q: max(entry[q].values()))
        notes.append(f"quality auto counted as {chosen_quality}")
    by_size: Mapping[str, float] = entry[chosen_quality]
    if size in (None, "auto") and spec.family == "dall-e":
        size = spec.default_size
    if size in (None, "auto"):
        chosen_size = max(by_size, key=lambda s: by_size[s])
        notes.append(f"size auto counted as {chosen_size}")
        price = by_size[chosen_size]
    elif size in by_size:
        chosen_size, price = str(size), by_size[str(size)]
    else:
        chosen_size = str(size)
        width, _, height = chosen_size.partition("x")
        price = by_size["1024x1024"] * int(width) * int(height) / (1024 * 1024)
        notes.append(f"{chosen_size} scaled from 1024x1024 by pixel area")
    basis = f"{price:g} quota per image ({model}, {chosen_quality}, {chosen_size})"
    return float(price), "; ".join([basis, *notes])


def prices_as_json(table: Mapping[str, Any]) -> dict[str, Any]:
    """The table for agents (in ttapi://models), with where each number comes from."""
    return {
        "unit": "quota per image (1 USD = 100 quota); every price is an estimate",
        "rules": RULES,
        "extras": EXTRAS,
        "models": {model: {"prices": table[model], "source": SOURCES.get(model, "")}
                   for model in table},
    }


__all__ = ["DEFAULT_PRICES", "MODEL_2_PLUS", "MODEL_4O", "QUOTA_PER_USD", "SOURCES", "merge_prices",
           "price_per_image", "prices_as_json"]
