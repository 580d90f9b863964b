"""The free-size rule of gpt-image-2 and gpt-image-2-plus (§11.3, §11.6), and the nearest
size that keeps it.

TTAPI silently adjusts an invalid size on its async route; we refuse instead and name the
nearest valid size, so the user never pays for a surprise.
"""

from __future__ import annotations

import re

SIDE_STEP = 16
LONG_MAX = 3840
RATIO_MAX = 3
PIXELS_MIN = 655_360
PIXELS_MAX = 8_294_400
RULE_TEXT = (
    f"WIDTHxHEIGHT with both sides multiples of {SIDE_STEP}, long side <= {LONG_MAX}, "
    f"long/short <= {RATIO_MAX}, and {PIXELS_MIN:,} to {PIXELS_MAX:,} pixels in total"
)
_WXH = re.compile(r"^([1-9][0-9]{0,4})x([1-9][0-9]{0,4})$")


def parse_wxh(size: str) -> tuple[int, int] | None:
    match = _WXH.match(size)
    return (int(match.group(1)), int(match.group(2))) if match else None


def free_size_problem(size: str) -> str | None:
    """What breaks the rule in ``size`` ('auto' is valid), or None."""
    if size == "auto":
        return None
    dims = parse_wxh(size)
    if dims is None:
        return "must be 'auto' or WIDTHxHEIGHT, e.g. '1536x1024'"
    w, h = dims
    if w % SIDE_STEP or h % SIDE_STEP:
        return f"both sides must be multiples of {SIDE_STEP}"
    if max(w, h) > LONG_MAX:
        return f"the long side may be at most {LONG_MAX}"
    if max(w, h) > RATIO_MAX * min(w, h):
        return f"the long side may be at most {RATIO_MAX} times the short side"
    if not PIXELS_MIN <= w * h <= PIXELS_MAX:
        return f"the total must be {PIXELS_MIN:,} to {PIXELS_MAX:,} pixels (this is {w * h:,})"
    return None


def nearest_free_size(size: str) -> str | None:
    """The valid WxH closest to ``size`` (squared distance of the sides), or None when
    ``size`` is not WIDTHxHEIGHT at all."""
    dims = parse_wxh(size)
    if dims is None:
        return None
    w, h = dims
    best: tuple[int, int, int] | None = None
    for width in range(SIDE_STEP, LONG_MAX + 1, SIDE_STEP):
        low = max(-(-width // RATIO_MAX), -(-PIXELS_MIN // width), SIDE_STEP)
        high = min(RATIO_MAX * width, PIXELS_MAX // width, LONG_MAX)
        low = -(-low // SIDE_STEP) * SIDE_STEP
        high = high // SIDE_STEP * SIDE_STEP
        if low > high:
            continue
        height = min(max(round(h / SIDE_STEP) * SIDE_STEP, low), high)
        score = (width - w) ** 2 + (height - h) ** 2
        if best is None or score < best[0]:
            best = (score, width, height)
    assert best is not None  # 1024x1024 always qualifies
    return f"{best[1]}x{best[2]}"
