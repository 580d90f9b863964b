"""Which decoder and resizer make the thumbnail floor: CPU per 1024x1024 photo-like PNG.

    python bench/decoders.py [--reps 40]

Interleaved, thread CPU time (the machine is shared: wall time swings, CPU much less).
pyspng (libspng) is measured when it is installed (`pip install pyspng`); it is not a
dependency: see bench/RESULTS.md for why.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

from PIL import Image  # noqa: E402

from ttapi_mcp.emulator.render import RenderSpec, render  # noqa: E402
from ttapi_mcp.previews import thumbnail_sync  # noqa: E402


def _jpeg(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def _pillow(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def candidates(data: bytes) -> dict[str, Callable[[], object]]:
    found: dict[str, Callable[[], object]] = {
        "Pillow decode": lambda: _pillow(data),
        "Pillow decode + reduce(2) + JPEG": lambda: _jpeg(_pillow(data).reduce(2)),
        "Pillow decode + thumbnail() + JPEG": lambda: _jpeg(_thumbnail(_pillow(data))),
        "server's thumbnail_sync": lambda: thumbnail_sync(data, 512),
    }
    try:
        import pyspng
    except ImportError:
        return found
    found["pyspng decode"] = lambda: pyspng.load(data)
    found["pyspng decode + reduce(2) + JPEG"] = lambda: _jpeg(
        Image.fromarray(pyspng.load(data)).reduce(2))
    return found


def _thumbnail(image: Image.Image) -> Image.Image:
    image.thumbnail((512, 512))
    return image


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=40)
    reps = parser.parse_args().reps
    data = render(RenderSpec(prompt="a lighthouse at dusk, benchmark", model="gpt-image-1",
                             width=1024, height=1024, texture=True))
    fns = candidates(data)
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(reps):
        for name, fn in fns.items():
            started = time.thread_time()
            fn()
            cpu[name].append(time.thread_time() - started)
    print(f"{len(data) / 1e6:.1f} MB PNG, 1024x1024, {reps} interleaved reps, median CPU:")
    for name, values in cpu.items():
        print(f"  {name:36s} {statistics.median(values) * 1000:6.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
