"""What a thumbnail keeps in memory: the call's peak is the decoded image, its pixels
and the shrunk copy, so nothing else may sit beside them (see bench figure 4).

These check what is alive or loaded, never sizes of the process.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys

from PIL import Image

from ttapi_mcp.api.b64values import load_json_b64_views
from ttapi_mcp.previews import _shrink
from ttapi_mcp.service.common import _decode_b64


def _noisy(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    return Image.effect_noise(size, 60).convert(mode)


def test_an_exact_factor_shrinks_by_the_reduce_alone_to_the_same_pixels() -> None:
    for mode in ("RGB", "RGBA", "L"):
        image = _noisy((1024, 1024), mode)
        for edge in (512, 256, 100, 341):
            ours = _shrink(image, edge)
            scale = edge / 1024
            size = (round(1024 * scale), round(1024 * scale))
            lanczos = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=1.0)
            assert ours.size == lanczos.size
            assert ours.tobytes() == lanczos.tobytes(), (mode, edge)
    wide = _noisy((1536, 1024))
    assert _shrink(wide, 512).size == (512, 341)


def test_decoding_an_image_releases_its_base64_from_the_body() -> None:
    buf = io.BytesIO()
    _noisy((64, 64)).save(buf, format="PNG")
    body = bytearray(json.dumps({"created": 1, "data": [
        {"b64_json": base64.b64encode(buf.getvalue()).decode()}]}).encode())
    value = load_json_b64_views(body)["data"][0]["b64_json"]

    data, preview = _decode_b64(value, 32)

    assert data == buf.getvalue()
    assert preview is not None and preview.result(timeout=30).width == 32
    assert len(value) == 0
    body.extend(b" ")  # no view pins the body any more


def test_an_opaque_thumbnail_does_not_load_the_webp_codec() -> None:
    """A fresh interpreter: the codec library is 0.3 MB only images with alpha need."""
    code = (
        "import io, sys\n"
        "from PIL import Image\n"
        "from ttapi_mcp.previews import thumbnail_sync\n"
        "buf = io.BytesIO(); Image.new('RGB', (300, 200), 'teal').save(buf, 'PNG')\n"
        "assert thumbnail_sync(buf.getvalue(), 64).mime == 'image/jpeg'\n"
        "assert 'PIL._webp' not in sys.modules, 'opaque: no WebP'\n"
        "buf = io.BytesIO(); Image.new('RGBA', (300, 200), (0, 0, 0, 0)).save(buf, 'PNG')\n"
        "assert thumbnail_sync(buf.getvalue(), 64).mime == 'image/webp'\n"
        "assert 'PIL._webp' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
