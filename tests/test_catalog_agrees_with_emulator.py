"""The catalog (client side) and the emulator (remote side) encode the contract independently.

Running the same parameter matrix through both catches a mistake in either: every
combination one accepts, the other must accept, and every one it refuses, the other
must refuse.
"""

from __future__ import annotations

import io
import itertools
from typing import Any

import httpx2
from PIL import Image

from ttapi_mcp.catalog import MODELS, validate_edit, validate_generation
from ttapi_mcp.emulator import Emulator
from ttapi_mcp.imagefacts import sniff_bytes

HEADERS = {"TT-API-KEY": "matrix-key"}

VALUES: dict[str, list[Any]] = {
    "n": [1, 2, 10, 11, 0],
    "size": ["auto", "256x256", "512x512", "1024x1024", "1536x1024", "1024x1536", "1792x1024",
             "1024x1792", "1024x1024 ", "1000x1000", "2048x1152", "3840x2160", "3840x1280",
             "3840x1024", "4096x1024", "816x816", "800x800", "2160x3840"],
    "quality": ["auto", "low", "medium", "high", "standard", "hd", "ultra"],
    "style": ["vivid", "natural", "photo"],
    "background": ["transparent", "opaque", "auto", "clear"],
    "moderation": ["low", "auto", "high"],
    "output_format": ["png", "jpeg", "webp", "gif"],
    "output_compression": [0, 50, 100, 101],
    "response_format": ["url", "b64_json", "png"],
}


def generation_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for model in [*MODELS, "gpt-image-1-mini"]:  # mini: on no TTAPI page, both refuse it
        cases.append({"model": model})
        for param, values in VALUES.items():
            cases.extend({"model": model, param: value} for value in values)
    for model in ("gpt-image-1", "dall-e-2"):
        for background, fmt, compression in itertools.product(
            ["transparent", "opaque", None], ["png", "jpeg", "webp", None], [0, 100, None]
        ):
            case = {"model": model, "background": background, "output_format": fmt,
                    "output_compression": compression}
            cases.append({k: v for k, v in case.items() if v is not None})
    for model, length in itertools.product(MODELS, [1000, 1001, 4000, 4001, 32000, 32001]):
        cases.append({"model": model, "prompt": "p" * length})
    return cases


def emulator_accepts(response: httpx2.Response) -> bool:
    assert response.status_code in (200, 400), response.text[:300]
    return response.status_code == 200


def test_generation_matrix_agrees(emulator: Emulator) -> None:
    disagreements = []
    with httpx2.Client(base_url=emulator.base_url, headers=HEADERS, timeout=30) as http:
        for case in generation_cases():
            body = {"prompt": "a red fox", **case}
            catalog_ok = validate_generation(body) == []
            emulator_ok = emulator_accepts(http.post("/v1/images/generations", json=body))
            if catalog_ok != emulator_ok:
                shown = {k: (v if k != "prompt" else f"<{len(v)} chars>") for k, v in body.items()}
                disagreements.append(f"{shown}: catalog={catalog_ok} emulator={emulator_ok}")
    assert disagreements == []


def png(size: tuple[int, int], mode: str = "RGBA", hole: bool = True) -> bytes:
    image = Image.new(mode, size, (10, 20, 30, 255) if mode == "RGBA" else (10, 20, 30))
    if hole and mode == "RGBA":
        image.putpixel((0, 0), (0, 0, 0, 0))
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


EDIT_VALUES: dict[str, list[Any]] = {
    "size": ["auto", "256x256", "1024x1024", "1536x1024", "1792x1024"],
    "quality": ["auto", "low", "high", "standard", "hd"],
    "input_fidelity": ["high", "low", "max"],
    "background": ["transparent", "opaque"],
    "output_format": ["png", "webp", "gif"],
    "response_format": ["url", "b64_json"],
    "style": ["vivid"],
    "moderation": ["low", "auto", "high"],
    "n": [1, 2, 11],
}


def test_edit_matrix_agrees(emulator: Emulator) -> None:
    square = png((64, 64))
    wide = png((96, 64))
    cases: list[tuple[dict[str, Any], list[bytes], bytes | None]] = []
    for model in [*MODELS, "gpt-image-1-mini"]:
        cases.append(({"model": model}, [square], None))
        cases.append(({"model": model}, [square], square))
        cases.append(({"model": model}, [wide], None))
        cases.append(({"model": model}, [square, square], None))
        cases.append(({"model": model}, [square], wide))
        for param, values in EDIT_VALUES.items():
            cases.extend(({"model": model, param: v}, [square], square) for v in values)
    disagreements = []
    with httpx2.Client(base_url=emulator.base_url, headers=HEADERS, timeout=30) as http:
        for params, images, mask in cases:
            body = {"prompt": "add a hat", **params}
            facts = [sniff_bytes(b, len(b)) for b in images]
            mask_facts = sniff_bytes(mask, len(mask)) if mask else None
            catalog_ok = validate_edit(body, facts, mask_facts, mask_has_transparent_pixel=True,
                                       image_has_transparent_pixel=True) == []
            files = [("image[]", (f"i{i}.png", data, "image/png")) for i, data in
                     enumerate(images)]
            if mask is not None:
                files.append(("mask", ("mask.png", mask, "image/png")))
            form = {k: str(v) for k, v in body.items()}
            emulator_ok = emulator_accepts(http.post("/v1/images/edits", data=form, files=files))
            if catalog_ok != emulator_ok:
                disagreements.append(
                    f"{params} images={len(images)} mask={mask is not None}: "
                    f"catalog={catalog_ok} emulator={emulator_ok}")
    assert disagreements == []


def test_async_gpt_route_matrix_agrees(emulator: Emulator) -> None:
    """§11.6: which field goes with which model, and which sizes are kept as asked.

    TTAPI silently adjusts an invalid gpt-image-2-plus size where the catalog refuses
    it, so "the emulator accepts" means: 200, and the job has the size that was asked.
    """
    from ttapi_mcp.catalog.asyncjobs import ASPECT_RATIOS, ASYNC_MODELS, validate_async_job

    sizes = [None, "3840x2160", "1024x1024", "1000x1000", "4096x1024", "512x512", "auto"]
    ratios = [None, *ASPECT_RATIOS, "2:1"]
    disagreements = []
    with httpx2.Client(base_url=emulator.base_url, headers=HEADERS, timeout=30) as http:
        for model, ratio, size in itertools.product(
                [*ASYNC_MODELS, "gpt-image-1-mini"], ratios, sizes):
            catalog_ok = validate_async_job(model, ratio, size) == []
            body = {"prompt": "draw a fox", "model": model, "aspect_ratio": ratio, "size": size}
            answer = http.post("/openai/gpt/generations",
                               json={k: v for k, v in body.items() if v is not None})
            assert answer.status_code in (200, 400), answer.text[:300]
            emulator_ok = answer.status_code == 200
            if emulator_ok and size is not None:
                job = emulator.jobs.get(answer.json()["data"]["job_id"])
                assert job is not None
                emulator_ok = f"{job.size[0]}x{job.size[1]}" == size
            if catalog_ok != emulator_ok:
                disagreements.append(f"{model} {ratio} {size}: catalog={catalog_ok} "
                                     f"emulator={emulator_ok}")
    assert disagreements == []
