"""The emulator against the wire contract, over real HTTP on loopback."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2
import pytest
from PIL import Image

from ttapi_mcp.emulator import Emulator, Fault

KEY = "test-key-123"
E1 = "/v1/images/generations"
E2 = "/v1/images/edits"
E3 = "/openai/v1/images/generations"
E4 = "/openai/4o-image/generations"
E5 = "/openai/4o-image/fetch"


# -- helpers --------------------------------------------------------------------------------


@pytest.fixture
def http(emulator: Emulator) -> Iterator[httpx2.Client]:
    assert emulator.base_url
    with httpx2.Client(base_url=emulator.base_url, headers={"TT-API-KEY": KEY},
                       timeout=10) as client:
        yield client


def img_bytes(size: tuple[int, int] = (64, 64), fmt: str = "PNG", mode: str = "RGB",
              clear: bool = False) -> bytes:
    """A real image; `clear` punches a fully transparent square into an RGBA image."""
    im = Image.new(mode, size, (200, 30, 30, 255) if mode == "RGBA" else (200, 30, 30))
    if clear:
        im.paste((0, 0, 0, 0), (0, 0, size[0] // 2, size[1] // 2))
    buf = io.BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


def mask_bytes(size: tuple[int, int] = (64, 64)) -> bytes:
    return img_bytes(size, "PNG", "RGBA", clear=True)


def decode(item: dict[str, Any]) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(item["b64_json"], validate=True)))


def error_of(resp: httpx2.Response) -> dict[str, Any]:
    body = resp.json()
    assert set(body) == {"error"}, body
    err: dict[str, Any] = body["error"]
    assert set(err) == {"message", "type", "param", "code"}
    return err


def envelope_error(resp: httpx2.Response) -> str:
    body = resp.json()
    assert body["status"] == "FAILED" and body["data"] is None, body
    message: str = body["message"]
    assert message
    return message


def wait_status(http: httpx2.Client, job_id: str, want: str) -> dict[str, Any]:
    """Poll E5 until `want` (bounded: 200 polls, 10 s)."""
    deadline = time.monotonic() + 10
    for _ in range(200):
        job: dict[str, Any] = http.post(E5, json={"jobId": job_id}).json()
        if job["status"] == want or time.monotonic() > deadline:
            return job
        time.sleep(0.05)
    return job


# -- E1 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt,pil", [("png", "PNG"), ("jpeg", "JPEG"), ("webp", "WEBP")])
def test_e1_gpt_formats(http: httpx2.Client, fmt: str, pil: str) -> None:
    body: dict[str, Any] = {"model": "gpt-image-1", "prompt": "a red fox", "n": 2,
                            "size": "1536x1024", "quality": "low", "output_format": fmt}
    if fmt != "png":
        body["output_compression"] = 50
    resp = http.post(E1, json=body)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert len(out["data"]) == 2
    for item in out["data"]:
        im = decode(item)
        assert (im.format, im.size) == (pil, (1536, 1024))
        assert "url" not in item and "revised_prompt" not in item
    assert (out["output_format"], out["quality"], out["size"], out["background"]) == (
        fmt, "low", "1536x1024", "opaque")
    usage = out["usage"]
    assert usage["output_tokens"] == 2 * 400
    assert usage["input_tokens_details"] == {"text_tokens": 3, "image_tokens": 0}
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_e1_transparent_background_has_real_alpha(http: httpx2.Client, fmt: str) -> None:
    resp = http.post(E1, json={"model": "gpt-image-1", "prompt": "logo", "background":
                               "transparent", "output_format": fmt})
    im = decode(resp.json()["data"][0])
    assert im.mode == "RGBA"
    assert im.getchannel("A").getextrema() == (0, 255)
    assert resp.json()["background"] == "transparent"


def test_e1_gpt_defaults_resolved(http: httpx2.Client) -> None:
    out = http.post(E1, json={"model": "gpt-image-1", "prompt": "x" * 9}).json()
    assert (out["size"], out["quality"], out["background"], out["output_format"]) == (
        "1024x1024", "high", "opaque", "png")
    assert out["usage"]["output_tokens"] == 4160
    assert out["usage"]["input_tokens"] == 3


def test_e1_dalle2_url_then_download(http: httpx2.Client, emulator: Emulator) -> None:
    out = http.post(E1, json={"model": "dall-e-2", "prompt": "a boat", "size": "256x256",
                              "n": 2}).json()
    assert set(out) == {"created", "data"}
    for item in out["data"]:
        assert item["url"].startswith(f"{emulator.base_url}/files/")
        assert "revised_prompt" not in item
        got = http.get(item["url"])
        assert got.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(got.content)).size == (256, 256)


def test_e1_dalle2_b64_json(http: httpx2.Client) -> None:
    out = http.post(E1, json={"model": "dall-e-2", "prompt": "a boat",
                              "response_format": "b64_json"}).json()
    assert decode(out["data"][0]).size == (1024, 1024)


def test_e1_dalle3_revised_prompt(http: httpx2.Client) -> None:
    out = http.post(E1, json={"model": "dall-e-3", "prompt": "a boat", "size": "1792x1024",
                              "quality": "hd", "style": "natural"}).json()
    item = out["data"][0]
    assert "a boat" in item["revised_prompt"]
    assert Image.open(io.BytesIO(http.get(item["url"]).content)).size == (1792, 1024)


def test_e1_default_model_and_gpt_switch(http: httpx2.Client, emulator: Emulator) -> None:
    assert "url" in http.post(E1, json={"prompt": "p"}).json()["data"][0]  # dall-e-2
    out = http.post(E1, json={"prompt": "p", "output_format": "jpeg"}).json()
    assert out["output_format"] == "jpeg" and "b64_json" in out["data"][0]


def test_e1_null_is_absent(http: httpx2.Client) -> None:
    resp = http.post(E1, json={"model": "dall-e-2", "prompt": "p", "n": None, "style": None})
    assert resp.status_code == 200


def test_e1_gpt_url_form(http: httpx2.Client, emulator: Emulator) -> None:
    emulator.options.gpt_url_form = True
    out = http.post(E1, json={"model": "gpt-image-1", "prompt": "p"}).json()
    assert set(out["data"][0]) == {"url", "revised_prompt"} and "usage" not in out


def test_render_is_deterministic(http: httpx2.Client) -> None:
    body = {"model": "gpt-image-1", "prompt": "same", "size": "1024x1024"}
    first = http.post(E1, json=body).json()["data"][0]["b64_json"]
    assert http.post(E1, json=body).json()["data"][0]["b64_json"] == first


E1_INVALID: list[tuple[dict[str, Any], str | None, str]] = [
    ({"model": "gpt-image-1"}, "prompt", "empty_string"),
    ({"model": "gpt-image-1", "prompt": ""}, "prompt", "empty_string"),
    ({"model": "gpt-image-1", "prompt": "x" * 32001}, "prompt", "string_above_max_length"),
    ({"model": "dall-e-2", "prompt": "x" * 1001}, "prompt", "string_above_max_length"),
    ({"model": "dall-e-3", "prompt": "x" * 4001}, "prompt", "string_above_max_length"),
    ({"model": "dall-e-9", "prompt": "p"}, "model", "invalid_value"),
    ({"model": "gpt-image-1", "prompt": "p", "n": 0}, "n", "invalid_value"),
    ({"model": "gpt-image-1", "prompt": "p", "n": 11}, "n", "invalid_value"),
    ({"model": "gpt-image-1", "prompt": "p", "n": "2"}, "n", "invalid_value"),
    ({"model": "gpt-image-1", "prompt": "p", "n": True}, "n", "invalid_value"),
    ({"model": "gpt-image-1", "prompt": 5}, "prompt", "invalid_value"),
    ({"model": "dall-e-3", "prompt": "p", "n": 2}, "n", "invalid_value"),
    ({"model": "gpt-image-1", "prompt": "p", "size": "1024x1024 "}, "size", "invalid_value"),
    ({"model": "gpt-image-1", "prompt": "p", "size": "1024X1024"}, "size", "invalid_value"),
    ({"model": "gpt-image-1", "prompt": "p", "size": "512x512"}, "size", "invalid_value"),
    ({"model": "dall-e-2", "prompt": "p", "size": "1792x1024"}, "size", "invalid_value"),
    ({"model": "dall-e-3", "prompt": "p", "size": "512x512"}, "size", "invalid_value"),
    ({"model": "dall-e-2", "prompt": "p", "size": "auto"}, "size", "invalid_value"),
    ({"model": "gpt-image-1", "prompt": "p", "quality": "hd"}, "quality", "invalid_value"),
    ({"model": "dall-e-2", "prompt": "p", "quality": "hd"}, "quality", "invalid_value"),
    ({"model": "dall-e-3", "prompt": "p", "quality": "high"}, "quality", "invalid_value"),
    ({"model": "gpt-image-1", "prompt": "p", "style": "vivid"}, "style", "unknown_parameter"),
    ({"model": "dall-e-2", "prompt": "p", "style": "vivid"}, "style", "unknown_parameter"),
    ({"model": "dall-e-3", "prompt": "p", "style": "comic"}, "style", "invalid_value"),
    ({"model": "dall-e-2", "prompt": "p", "background": "opaque"}, "background",
     "unknown_parameter"),
    ({"model": "dall-e-3", "prompt": "p", "output_format": "png"}, "output_format",
     "unknown_parameter"),
    ({"model": "dall-e-2", "prompt": "p", "output_compression": 50}, "output_compression",
     "unknown_parameter"),
    ({"model": "dall-e-3", "prompt": "p", "moderation": "low"}, "moderation",
     "unknown_parameter"),
    ({"model": "dall-e-2", "prompt": "p", "stream": False}, "stream", "unknown_parameter"),
    ({"model": "gpt-image-1", "prompt": "p", "background": "white"}, "background",
     "invalid_value"),
    ({"model": "gpt-image-1", "prompt": "p", "output_format": "gif"}, "output_format",
     "invalid_value"),
    ({"model": "gpt-image-1", "prompt": "p", "moderation": "high"}, "moderation",
     "invalid_value"),
    ({"model": "gpt-image-1", "prompt": "p", "output_compression": 101, "output_format":
      "jpeg"}, "output_compression", "invalid_value"),
    ({"model": "gpt-image-1", "prompt": "p", "output_compression": 80}, "output_compression",
     "invalid_value"),
    ({"model": "gpt-image-1", "prompt": "p", "output_compression": 80, "output_format": "png"},
     "output_compression", "invalid_value"),
    ({"model": "gpt-image-1", "prompt": "p", "background": "transparent",
      "output_format": "jpeg"}, "background", "invalid_value"),
    ({"model": "gpt-image-1", "prompt": "p", "response_format": "url"}, "response_format",
     "invalid_value"),
    ({"model": "dall-e-2", "prompt": "p", "response_format": "png"}, "response_format",
     "invalid_value"),
    ({"model": "gpt-image-1", "prompt": "p", "stream": "yes"}, "stream", "invalid_value"),
    ({"model": "gpt-image-1", "prompt": "p", "stream": True, "partial_images": 4},
     "partial_images", "invalid_value"),
    ({"model": "gpt-image-1", "prompt": "p", "partial_images": 2}, "partial_images",
     "invalid_value"),
    ({"model": "gpt-image-1", "prompt": "p", "input_fidelity": "high"}, "input_fidelity",
     "unknown_parameter"),
    ({"model": "gpt-image-1", "prompt": "p", "colour": "red"}, "colour", "unknown_parameter"),
]


@pytest.mark.parametrize("body,param,code", E1_INVALID)
def test_e1_validation(http: httpx2.Client, emulator: Emulator, body: dict[str, Any],
                       param: str, code: str) -> None:
    resp = http.post(E1, json=body)
    assert resp.status_code == 400
    err = error_of(resp)
    assert (err["param"], err["code"], err["type"]) == (param, code, "invalid_request_error")
    assert emulator.api_requests("E1")[-1].status == 400


E1_VALID: list[dict[str, Any]] = [
    {"model": "gpt-image-1", "prompt": "p", "response_format": "b64_json", "stream": False,
     "partial_images": 0, "moderation": "low", "user": "u1"},
    {"model": "gpt-image-1", "prompt": "p", "output_format": "webp", "background":
     "transparent", "output_compression": 0},
    {"model": "dall-e-2", "prompt": "p", "quality": "auto", "size": "512x512"},
    {"model": "dall-e-3", "prompt": "x" * 4000, "quality": "auto"},
    {"model": "gpt-image-1.5", "prompt": "p", "size": "1024x1536"},
    {"model": "gpt-image-2", "prompt": "p", "size": "2048x1152"},
    {"model": "gpt-image-2", "prompt": "p", "size": "3840x2160"},
    {"model": "gpt-image-2", "prompt": "p", "size": "3840x1280"},
    {"model": "gpt-image-2", "prompt": "p", "size": "816x816"},
]


@pytest.mark.parametrize("body", E1_VALID)
def test_e1_valid_edges(http: httpx2.Client, body: dict[str, Any]) -> None:
    resp = http.post(E1, json=body)
    assert resp.status_code == 200, resp.text


def test_e1_size_message_matches_contract(http: httpx2.Client) -> None:
    err = error_of(http.post(E1, json={"model": "gpt-image-1", "prompt": "p",
                                       "size": "1024x1024 "}))
    assert err["message"] == ("Invalid value: '1024x1024 '. Supported values are: '1024x1024', "
                              "'1024x1536', '1536x1024', and 'auto'.")


def test_e1_bad_json_body(http: httpx2.Client) -> None:
    resp = http.post(E1, content=b"{not json", headers={"Content-Type": "application/json"})
    assert resp.status_code == 400 and error_of(resp)["type"] == "invalid_request_error"
    assert http.post(E1, json=[1, 2]).status_code == 400


# -- E2 -------------------------------------------------------------------------------------


def png_part(field: str, data: bytes, name: str = "a.png",
             ctype: str = "image/png") -> tuple[str, tuple[str, bytes, str]]:
    return (field, (name, data, ctype))


def test_e2_gpt_two_images_and_mask(http: httpx2.Client, emulator: Emulator) -> None:
    files = [png_part("image[]", img_bytes((96, 64))),
             png_part("image[]", img_bytes((64, 64), "JPEG"), "b.jpg", "image/jpeg"),
             png_part("mask", mask_bytes((96, 64)), "m.png")]
    resp = http.post(E2, data={"model": "gpt-image-1", "prompt": "add a hat", "n": "2",
                               "input_fidelity": "high", "output_format": "webp"}, files=files)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["size"] == "1536x1024"  # auto: closest aspect ratio to the first image
    assert decode(out["data"][1]).size == (1536, 1024)
    assert out["usage"]["input_tokens_details"]["image_tokens"] > 0
    rec = emulator.api_requests("E2")[-1]
    assert rec.form["n"] == "2" and rec.form["prompt"] == "add a hat"
    assert [(f[0], f[2]) for f in rec.files] == [
        ("image[]", "image/png"), ("image[]", "image/jpeg"), ("mask", "image/png")]


def test_e2_indexed_parts_and_single_image(http: httpx2.Client, emulator: Emulator) -> None:
    files = [png_part("image[1]", img_bytes()), png_part("image[0]", img_bytes((32, 64)))]
    out = http.post(E2, data={"model": "gpt-image-1", "prompt": "p"}, files=files).json()
    assert out["size"] == "1024x1536"  # ordered by N: the portrait image[0] comes first
    resp = http.post(E2, data={"model": "gpt-image-1", "prompt": "p"},
                     files=[png_part("image", img_bytes())])
    assert resp.status_code == 200


def test_e2_dalle2_with_mask_and_with_transparency(http: httpx2.Client) -> None:
    resp = http.post(E2, data={"model": "dall-e-2", "prompt": "p", "size": "512x512",
                               "response_format": "b64_json"},
                     files=[png_part("image", img_bytes()), png_part("mask", mask_bytes())])
    assert resp.status_code == 200, resp.text
    assert decode(resp.json()["data"][0]).size == (512, 512)
    resp = http.post(E2, data={"model": "dall-e-2", "prompt": "p"},
                     files=[png_part("image", img_bytes(mode="RGBA", clear=True))])
    assert resp.status_code == 200 and "url" in resp.json()["data"][0]


GOOD = img_bytes()
E2_INVALID: list[tuple[str, dict[str, str], list[Any], str, str]] = [
    ("17 images", {"model": "gpt-image-1"}, [png_part("image[]", GOOD)] * 17, "image",
     "invalid_image"),
    ("dall-e-2 two images", {"model": "dall-e-2"},
     [png_part("image[]", mask_bytes())] * 2, "image", "invalid_image"),
    ("octet-stream", {"model": "gpt-image-1"},
     [png_part("image", GOOD, "a.png", "application/octet-stream")], "image", "invalid_image"),
    ("gif bytes", {"model": "gpt-image-1"},
     [png_part("image", img_bytes(fmt="GIF"))], "image", "invalid_image"),
    ("dall-e-2 jpeg", {"model": "dall-e-2"},
     [png_part("image", img_bytes(fmt="JPEG"), "a.jpg", "image/jpeg")], "image",
     "invalid_image"),
    ("dall-e-2 not square", {"model": "dall-e-2"},
     [png_part("image", img_bytes((64, 32), mode="RGBA", clear=True))], "image",
     "invalid_image"),
    ("dall-e-2 no transparency", {"model": "dall-e-2"}, [png_part("image", GOOD)], "image",
     "invalid_image"),
    ("mask jpeg", {"model": "gpt-image-1"},
     [png_part("image", GOOD), png_part("mask", img_bytes(fmt="JPEG"), "m.jpg", "image/jpeg")],
     "mask", "invalid_image"),
    ("mask wrong size", {"model": "gpt-image-1"},
     [png_part("image", GOOD), png_part("mask", mask_bytes((32, 32)))], "mask", "invalid_image"),
    ("mask without alpha", {"model": "gpt-image-1"},
     [png_part("image", GOOD), png_part("mask", img_bytes())], "mask", "invalid_image"),
    ("mask fully opaque", {"model": "gpt-image-1"},
     [png_part("image", GOOD), png_part("mask", img_bytes(mode="RGBA"))], "mask",
     "invalid_image"),
    ("dall-e-3", {"model": "dall-e-3"}, [png_part("image", GOOD)], "model", "invalid_value"),
    ("style", {"model": "gpt-image-1", "style": "vivid"}, [png_part("image", GOOD)], "style",
     "unknown_parameter"),
    ("moderation", {"model": "gpt-image-1", "moderation": "high"}, [png_part("image", GOOD)],
     "moderation", "invalid_value"),
    ("gpt-image-2 fidelity", {"model": "gpt-image-2", "input_fidelity": "low"},
     [png_part("image", GOOD)], "input_fidelity", "unknown_parameter"),
    ("gpt-image-2 transparent", {"model": "gpt-image-2", "background": "transparent"},
     [png_part("image", GOOD)], "background", "invalid_value"),
    ("mini is gone", {"model": "gpt-image-1-mini"}, [png_part("image", GOOD)], "model",
     "invalid_value"),
    ("dall-e-2 fidelity", {"model": "dall-e-2", "input_fidelity": "low"},
     [png_part("image", mask_bytes())], "input_fidelity", "unknown_parameter"),
    ("n not a number", {"model": "gpt-image-1", "n": "two"}, [png_part("image", GOOD)], "n",
     "invalid_value"),
    ("dall-e-2 long prompt", {"model": "dall-e-2", "prompt": "x" * 1001},
     [png_part("image", mask_bytes())], "prompt", "string_above_max_length"),
    ("gpt size", {"model": "gpt-image-1", "size": "256x256"}, [png_part("image", GOOD)],
     "size", "invalid_value"),
]


@pytest.mark.parametrize("case,data,files,param,code", E2_INVALID, ids=[c[0] for c in E2_INVALID])
def test_e2_validation(http: httpx2.Client, case: str, data: dict[str, str], files: list[Any],
                       param: str, code: str) -> None:
    form = {"prompt": "p", **data}
    resp = http.post(E2, data=form, files=files)
    assert resp.status_code == 400, resp.text
    err = error_of(resp)
    assert (err["param"], err["code"]) == (param, code)


def test_e2_missing_image_multipart(http: httpx2.Client) -> None:
    boundary = "b0undary"
    body = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
                   for k, v in {"model": "gpt-image-1", "prompt": "p"}.items())
    resp = http.post(E2, content=(body + f"--{boundary}--\r\n").encode(),
                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    err = error_of(resp)
    assert (err["param"], err["code"]) == ("image", "invalid_image")


def test_e2_unsupported_mimetype_message(http: httpx2.Client) -> None:
    resp = http.post(E2, data={"model": "gpt-image-1", "prompt": "p"},
                     files=[png_part("image", GOOD, "a.png", "application/octet-stream")])
    assert "unsupported mimetype" in error_of(resp)["message"]


def test_e2_byte_limits(http: httpx2.Client, emulator: Emulator) -> None:
    emulator.options.max_gpt_image_bytes = len(GOOD)  # strict "less than"
    resp = http.post(E2, data={"model": "gpt-image-1", "prompt": "p"},
                     files=[png_part("image", GOOD)])
    assert error_of(resp)["param"] == "image"
    emulator.options.max_gpt_image_bytes = len(GOOD) + 1
    emulator.options.max_mask_bytes = 10
    resp = http.post(E2, data={"model": "gpt-image-1", "prompt": "p"},
                     files=[png_part("image", GOOD), png_part("mask", mask_bytes())])
    assert error_of(resp)["param"] == "mask"


def test_e2_json_form_rules(http: httpx2.Client) -> None:
    """§11.5: the JSON edit body, GPT models only, image_url or (refused) file_id."""
    good = "data:image/png;base64," + base64.b64encode(GOOD).decode()
    cases = [
        ({"model": "gpt-image-1", "prompt": "p", "images": []}, "images"),
        ({"model": "dall-e-2", "prompt": "p", "images": [{"image_url": good}]}, "model"),
        ({"model": "gpt-image-1", "prompt": "p", "images": [{"file_id": "file-1"}]},
         "images[0]"),
        ({"model": "gpt-image-1", "prompt": "p",
          "images": [{"image_url": "https://example.com/a.png"}]}, "images[0]"),
        ({"model": "gpt-image-1", "prompt": "p", "images": [{"image_url": good}],
          "moderation": "high"}, "moderation"),
    ]
    for body, param in cases:
        resp = http.post(E2, json=body)
        assert resp.status_code == 400, body
        assert error_of(resp)["param"] == param, (body, resp.text)
    resp = http.post(E2, content=b"prompt=p", headers={"Content-Type": "text/plain"})
    assert resp.status_code == 400 and "JSON" in error_of(resp)["message"]


def test_e2_json_form_edits_data_uris_and_own_urls(http: httpx2.Client) -> None:
    url = http.post(E1, json={"model": "dall-e-2", "prompt": "a boat", "size": "256x256",
                              "response_format": "url"}).json()["data"][0]["url"]
    good = "data:image/png;base64," + base64.b64encode(GOOD).decode()
    body = {"model": "gpt-image-1", "prompt": "join them", "quality": "low", "n": 2,
            "moderation": "low", "size": "1024x1024",
            "images": [{"image_url": good}, {"image_url": url}]}
    out = http.post(E2, json=body)
    assert out.status_code == 200, out.text
    assert len(out.json()["data"]) == 2 and out.json()["usage"]["input_tokens_details"][
        "image_tokens"] > 0


# -- E3 -------------------------------------------------------------------------------------


def test_e3_envelope_success(http: httpx2.Client) -> None:
    resp = http.post(E3, json={"prompt": "a lighthouse", "size": "1024x1792",
                               "quality": "hd", "whatever": 1})
    body = resp.json()
    assert (resp.status_code, body["status"], body["message"]) == (200, "SUCCESS", "success")
    item = body["data"]["data"][0]
    assert "lighthouse" in item["revised_prompt"]
    assert Image.open(io.BytesIO(http.get(item["url"]).content)).size == (1024, 1792)


@pytest.mark.parametrize("body", [
    {"prompt": "p"}, {"prompt": "p", "size": "1024x1024 "}, {"prompt": "p", "size": "512x512"},
])
def test_e3_size_message(http: httpx2.Client, body: dict[str, Any]) -> None:
    resp = http.post(E3, json=body)
    assert resp.status_code == 400
    assert envelope_error(resp) == ('For the dall-e-3 model, "size" must be one of 1024x1024, '
                                    '1792x1024, or 1024x1792.')


@pytest.mark.parametrize("body", [
    {"prompt": "p", "size": "1024x1024", "model": "gpt-image-1"},
    {"prompt": "p", "size": "1024x1024", "n": 2},
    {"prompt": "", "size": "1024x1024"},
    {"prompt": "x" * 4001, "size": "1024x1024"},
    {"prompt": "p", "size": "1024x1024", "quality": "high"},
])
def test_e3_rejections(http: httpx2.Client, body: dict[str, Any]) -> None:
    resp = http.post(E3, json=body)
    assert resp.status_code == 400
    envelope_error(resp)


# -- E4 / E5 --------------------------------------------------------------------------------


def submit(http: httpx2.Client, **extra: Any) -> str:
    resp = http.post(E4, json={"prompt": "draw a cat", **extra})
    body = resp.json()
    assert (resp.status_code, body["status"], body["message"]) == (200, "SUCCESS", "success")
    job_id: str = body["data"]["job_id"]  # §11.2: snake case by default
    assert len(job_id) == 36 and job_id[14] == "4"  # UUID4
    return job_id


def test_submit_answers_jobId_behind_the_option(http: httpx2.Client, emulator: Emulator) -> None:
    emulator.options.job_id_key = "jobId"
    body = http.post(E4, json={"prompt": "draw a cat"}).json()
    assert list(body["data"]) == ["jobId"]
    fetched = http.get(E5, params={"jobId": body["data"]["jobId"]}).json()
    assert fetched["jobId"] == body["data"]["jobId"]


@pytest.mark.parametrize("path", [E1, E2, E4, E5])
def test_account_blocked_fault_is_a_403_envelope(
    http: httpx2.Client, emulator: Emulator, path: str
) -> None:
    route = {E1: "E1", E2: "E2", E4: "E4", E5: "E5"}[path]
    emulator.add_fault(Fault(route=route, kind="account_blocked"))  # type: ignore[arg-type]
    resp = http.post(path, json={"prompt": "draw a cat", "model": "dall-e-2"})
    assert resp.status_code == 403
    assert resp.json() == {"status": "FAILED", "message": "Account Block", "data": None}


def test_job_lifecycle_success(http: httpx2.Client, emulator: Emulator) -> None:
    emulator.options.job_seconds = 0.2
    job_id = submit(http, referImages=["https://example.com/r.png"])
    first = http.get(E5, params={"jobId": job_id}).json()
    assert first["status"] == "ON_QUEUE" and first["message"] is None
    assert first["data"]["imageUrl"] is None and first["data"]["finishTime"] is None
    assert first["data"]["quota"] == "2"
    done = wait_status(http, job_id, "SUCCESS")
    assert (done["status"], done["message"], done["jobId"]) == ("SUCCESS", "success", job_id)
    data = done["data"]
    assert data["prompt"] == "draw a cat" and data["referImages"] == ["https://example.com/r.png"]
    assert data["quota"] == "2" and len(data["finishTime"]) == 19
    got = http.get(data["imageUrl"])
    assert got.status_code == 200 and Image.open(io.BytesIO(got.content)).format == "PNG"
    again = http.post(E5, json={"job_id": job_id}).json()
    assert again["data"]["imageUrl"] == data["imageUrl"]  # terminal state never changes


def test_job_pending_queue_and_failure(http: httpx2.Client, emulator: Emulator) -> None:
    emulator.options.pending_queue_seconds = 0.15
    emulator.options.job_seconds = 0.05
    emulator.options.job_outcome = "failed"
    job_id = submit(http)
    assert http.post(E5, json={"jobId": job_id}).json()["status"] == "PENDING_QUEUE"
    done = wait_status(http, job_id, "FAILED")
    assert (done["status"], done["message"]) == ("FAILED", "job failed")
    assert done["data"]["quota"] == "0" and done["data"]["imageUrl"] is None
    assert done["data"]["finishTime"]


def test_job_errors(http: httpx2.Client) -> None:
    resp = http.post(E5, json={})
    assert resp.status_code == 400 and envelope_error(resp) == "jobId is required"
    resp = http.post(E5, params={"jobId": "00000000-0000-4000-8000-000000000000"})
    assert resp.status_code == 404 and envelope_error(resp) == "job not found"
    for body in ({}, {"prompt": ""}, {"prompt": "p", "referImages": ["file:///etc/x"]},
                 {"prompt": "p", "referImages": ["https://x/a"] * 17},
                 {"prompt": "p", "hookUrl": "not a url"}):
        resp = http.post(E4, json=body)
        assert resp.status_code == 400
        envelope_error(resp)


class _HookReceiver:
    """A loopback HTTP server that records JSON POSTs."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                length = int(self.headers.get("Content-Length", "0"))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_hook_delivered_once(http: httpx2.Client, emulator: Emulator) -> None:
    emulator.options.job_seconds = 0.1
    receiver = _HookReceiver()
    try:
        job_id = submit(http, hookUrl=receiver.url)
        deadline = time.monotonic() + 10
        while not emulator.hook_deliveries and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)  # a second delivery, if any, would arrive by now
    finally:
        receiver.close()
    assert len(receiver.received) == 1 and len(emulator.hook_deliveries) == 1
    body = receiver.received[0]
    assert (body["status"], body["jobId"]) == ("SUCCESS", job_id)
    assert body["data"]["hookUrl"] == receiver.url and body["data"]["imageUrl"]
    delivery = emulator.hook_deliveries[0]
    assert (delivery.status, delivery.error) == (204, None)
    hooks = [r for r in emulator.log if r.route == "hook"]
    assert len(hooks) == 1 and hooks[0].status == 204 and hooks[0].json == body


def test_hook_failure_recorded(http: httpx2.Client, emulator: Emulator) -> None:
    emulator.options.job_seconds = 0
    receiver = _HookReceiver()
    receiver.close()  # nobody listens any more: the POST fails
    submit(http, hookUrl=receiver.url)
    deadline = time.monotonic() + 10
    while not emulator.hook_deliveries and time.monotonic() < deadline:
        time.sleep(0.02)
    delivery = emulator.hook_deliveries[0]
    assert delivery.status is None and delivery.error


# -- auth, routing, URLs --------------------------------------------------------------------


@pytest.mark.parametrize("path", [E1, E2, E3, E4, E5])
def test_auth_missing_key(emulator: Emulator, path: str) -> None:
    assert emulator.base_url
    resp = httpx2.post(emulator.base_url + path, json={"prompt": "p"})
    assert resp.status_code == 401
    # §11.1: the envelope without data on every route, /v1/* included.
    assert resp.json() == {"status": "FAILED",
                           "message": "Wrong TT-API-KEY or email is not activated."}


def test_auth_keys(emulator: Emulator) -> None:
    emulator.options.api_keys = ["good"]
    body = {"model": "dall-e-2", "prompt": "p"}
    url = f"{emulator.base_url}{E1}"
    assert httpx2.post(url, json=body, headers={"TT-API-KEY": "bad"}).status_code == 401
    assert httpx2.post(url, json=body, headers={"Authorization": "Bearer good"}).status_code == 200
    both = {"TT-API-KEY": "good", "Authorization": "Bearer bad"}
    assert httpx2.post(url, json=body, headers=both).status_code == 200
    both = {"TT-API-KEY": "bad", "Authorization": "Bearer good"}
    resp = httpx2.post(url, json=body, headers=both)
    assert resp.status_code == 401 and "bad" not in resp.text and "good" not in resp.text


def test_unknown_paths_and_methods(http: httpx2.Client) -> None:
    resp = http.post("/v1/images/variations", json={})
    assert resp.status_code == 404 and error_of(resp)["code"] is None
    resp = http.post("/openai/v1/4o-image/generations", json={"prompt": "draw"})
    assert resp.status_code == 404
    envelope_error(resp)
    resp = http.get(E1)
    assert resp.status_code == 405 and resp.headers["allow"] == "POST"
    error_of(resp)
    resp = http.put(E5)
    assert resp.status_code == 405
    envelope_error(resp)
    assert http.get("/files/nothing.png").status_code == 404


def test_url_expiry(http: httpx2.Client, emulator: Emulator) -> None:
    emulator.options.url_ttl_seconds = 0
    url = http.post(E1, json={"model": "dall-e-2", "prompt": "p"}).json()["data"][0]["url"]
    resp = http.get(url)
    assert resp.status_code == 403 and b"AuthenticationFailed" in resp.content


def test_job_result_url_expiry(http: httpx2.Client, emulator: Emulator) -> None:
    emulator.options.job_seconds = 0
    emulator.options.url_ttl_seconds = 0
    url = wait_status(http, submit(http), "SUCCESS")["data"]["imageUrl"]
    assert http.get(url).status_code == 403


# -- faults ---------------------------------------------------------------------------------


def test_fault_status_family_shapes(http: httpx2.Client, emulator: Emulator) -> None:
    emulator.add_fault(Fault(route="E1", status=429, count=2, retry_after="7"))
    emulator.add_fault(Fault(route="E4", status=402))
    body = {"model": "dall-e-2", "prompt": "p"}
    for _ in range(2):
        resp = http.post(E1, json=body)
        assert (resp.status_code, resp.headers["retry-after"]) == (429, "7")
        assert error_of(resp)["code"] == "rate_limit_exceeded"
    assert http.post(E1, json=body).status_code == 200  # the fault is used up
    resp = http.post(E4, json={"prompt": "draw"})
    assert resp.status_code == 402 and "balance" in envelope_error(resp)
    assert [r.fault for r in emulator.api_requests("E1")] == ["status", "status", None]


def test_fault_429_default_retry_after(http: httpx2.Client, emulator: Emulator) -> None:
    emulator.add_fault(Fault(route="E3", status=429))
    resp = http.post(E3, json={"prompt": "p", "size": "1024x1024"})
    assert resp.headers["retry-after"].isdigit()


@pytest.mark.parametrize("shape", ["openai", "envelope", "text", "empty"])
def test_fault_explicit_shapes(http: httpx2.Client, emulator: Emulator, shape: str) -> None:
    emulator.add_fault(Fault(route="E1", status=503, shape=shape, message="down", code="c1"))  # type: ignore[arg-type]
    resp = http.post(E1, json={"model": "dall-e-2", "prompt": "p"})
    assert resp.status_code == 503
    if shape == "openai":
        assert error_of(resp)["message"] == "down" and error_of(resp)["code"] == "c1"
    elif shape == "envelope":
        assert envelope_error(resp) == "down"
    elif shape == "text":
        assert resp.text == "down" and resp.headers["content-type"].startswith("text/plain")
    else:
        assert resp.content == b""


def test_fault_slow_read_timeout(emulator: Emulator) -> None:
    emulator.add_fault(Fault(route="E1", kind="slow", delay=0.5))
    with pytest.raises(httpx2.ReadTimeout):
        httpx2.post(f"{emulator.base_url}{E1}", json={"model": "dall-e-2", "prompt": "p"},
                    headers={"TT-API-KEY": KEY}, timeout=httpx2.Timeout(5, read=0.1))


def test_fault_delay_then_answer(http: httpx2.Client, emulator: Emulator) -> None:
    emulator.add_fault(Fault(route="E5", status=500, delay=0.05))
    resp = http.post(E5, json={"jobId": "x"})
    assert resp.status_code == 500 and envelope_error(resp)


@pytest.mark.parametrize("route", ["E1", "download"])
def test_fault_drop(http: httpx2.Client, emulator: Emulator, route: str) -> None:
    body = {"model": "dall-e-2", "prompt": "p"}
    if route == "download":
        url = http.post(E1, json=body).json()["data"][0]["url"]
    emulator.add_fault(Fault(route=route, kind="drop"))  # type: ignore[arg-type]
    with pytest.raises(httpx2.RemoteProtocolError):
        if route == "E1":
            http.post(E1, json=body)
        else:
            http.get(url)
    assert emulator.log[-1].fault == "drop"


def test_fault_malformed_json(http: httpx2.Client, emulator: Emulator) -> None:
    emulator.add_fault(Fault(route="E1", kind="malformed_json"))
    resp = http.post(E1, json={"model": "gpt-image-1", "prompt": "p"})
    assert resp.status_code == 200
    with pytest.raises(ValueError):
        json.loads(resp.content)


def test_fault_truncated_b64(http: httpx2.Client, emulator: Emulator) -> None:
    emulator.add_fault(Fault(route="E1", kind="truncated_b64"))
    items = http.post(E1, json={"model": "gpt-image-1", "prompt": "p", "n": 2}).json()["data"]
    assert decode(items[0]).size == (1024, 1024)
    with pytest.raises(ValueError):
        base64.b64decode(items[1]["b64_json"], validate=True)


def test_fault_expired_url(http: httpx2.Client, emulator: Emulator) -> None:
    emulator.add_fault(Fault(route="E1", kind="expired_url"))
    body = {"model": "dall-e-2", "prompt": "p"}
    url = http.post(E1, json=body).json()["data"][0]["url"]
    assert http.get(url).status_code == 403
    url = http.post(E1, json=body).json()["data"][0]["url"]
    assert http.get(url).status_code == 200
    emulator.add_fault(Fault(route="download", kind="expired_url"))
    assert http.get(url).status_code == 403


def test_fault_download_status(http: httpx2.Client, emulator: Emulator) -> None:
    url = http.post(E1, json={"model": "dall-e-2", "prompt": "p"}).json()["data"][0]["url"]
    emulator.add_fault(Fault(route="download", status=502))
    assert http.get(url).status_code == 502
    assert http.get(url).status_code == 200


def test_fault_job_status(http: httpx2.Client, emulator: Emulator) -> None:
    emulator.options.job_seconds = 60
    job_id = submit(http)
    emulator.add_fault(Fault(route="E5", job_status="FAILED"))
    forced = http.post(E5, json={"jobId": job_id}).json()
    assert (forced["status"], forced["data"]["quota"]) == ("FAILED", "0")
    assert http.post(E5, json={"jobId": job_id}).json()["status"] == "FAILED"  # sticks


def test_admin_routes(http: httpx2.Client, emulator: Emulator) -> None:
    resp = http.post("/_emulator/faults", json={"route": "E1", "status": 500})
    assert resp.status_code == 200
    assert http.post(E1, json={"model": "dall-e-2", "prompt": "p"}).status_code == 500
    assert http.post("/_emulator/faults", json={"route": "E9"}).status_code == 400
    log = http.get("/_emulator/log").json()
    assert [r["route"] for r in log] == ["admin", "E1", "admin"]
    assert http.post("/_emulator/options", json={"job_seconds": 0.5}).json()["job_seconds"] == 0.5
    assert http.delete("/_emulator/log").status_code == 200
    assert [r.route for r in emulator.log] == ["admin"]
    assert http.post("/_emulator/reset").status_code == 200
    assert emulator.options.job_seconds == 3.0


# -- request log ----------------------------------------------------------------------------


def test_request_log_masks_keys(emulator: Emulator) -> None:
    headers = {"TT-API-KEY": "sk-secret-1", "Authorization": "Bearer sk-secret-1"}
    with httpx2.Client(base_url=str(emulator.base_url), headers=headers) as client:
        client.post(E1, json={"model": "dall-e-2", "prompt": "p", "n": 2})
        client.get(E5, params={"jobId": "nope"})
    e1, e5 = emulator.api_requests()
    assert (e1.method, e1.path, e1.route, e1.status) == ("POST", E1, "E1", 200)
    assert e1.json == {"model": "dall-e-2", "prompt": "p", "n": 2}
    assert e1.headers["tt-api-key"] == "***" and e1.headers["authorization"] == "Bearer ***"
    assert (e5.query, e5.status, e5.json) == ({"jobId": "nope"}, 404, None)
    assert "sk-secret-1" not in repr(emulator.log)
    emulator.clear_log()
    assert emulator.log == []


def test_latency_option_applies_to_api_routes(emulator: Emulator) -> None:
    emulator.options.latency_seconds = 0.5
    with pytest.raises(httpx2.ReadTimeout):
        httpx2.post(f"{emulator.base_url}{E4}", json={"prompt": "draw"},
                    headers={"TT-API-KEY": KEY}, timeout=httpx2.Timeout(5, read=0.1))
    deadline = time.monotonic() + 5  # let the abandoned request finish before the next test
    while not emulator.api_requests("E4") and time.monotonic() < deadline:
        time.sleep(0.02)


def test_photo_sized_option_renders_result_sized_images(
    emulator: Emulator, http: httpx2.Client
) -> None:
    body = {"model": "gpt-image-1", "prompt": "a lighthouse", "size": "1024x1024"}
    flat = base64.b64decode(http.post(E1, json=body).json()["data"][0]["b64_json"])
    emulator.options.photo_sized = True
    item = http.post(E1, json=body).json()["data"][0]
    photo = base64.b64decode(item["b64_json"])
    assert len(photo) > 1_000_000 > 100_000 > len(flat)
    assert decode(item).size == (1024, 1024)
    assert base64.b64decode(http.post(E1, json=body).json()["data"][0]["b64_json"]) == photo


def test_answers_splice_pre_encoded_values_exactly_where_they_belong() -> None:
    from ttapi_mcp.emulator.shapes import RawJSON, json_response

    tricky = 'a prompt with "quotes", \x00raw:00:0 and 中文'
    body = {"data": {"data": [{"b64_json": RawJSON(b'"QUJD"'), "revised_prompt": tricky},
                              {"b64_json": RawJSON(b'"REVG"')}]}, "message": tricky}

    sent = json.loads(json_response(body).body)

    assert sent == {"data": {"data": [{"b64_json": "QUJD", "revised_prompt": tricky},
                                      {"b64_json": "REVG"}]}, "message": tricky}
    with pytest.raises(TypeError, match="not JSON serializable"):
        json_response({"x": object()})


def test_a_text_that_equals_a_placeholder_does_not_receive_the_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ttapi_mcp.emulator import shapes

    monkeypatch.setattr(shapes.secrets, "token_hex", lambda _: "00")
    body = {"data": [{"revised_prompt": "\x00raw:00:0", "b64_json": shapes.RawJSON(b'"QUJD"')}]}

    sent = json.loads(shapes.json_response(body).body)

    assert sent == {"data": [{"revised_prompt": "\x00raw:00:0", "b64_json": "QUJD"}]}
