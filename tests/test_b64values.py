"""Base64 values cut out of a JSON body must give exactly what json.loads gives."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttapi_mcp.api.b64values import B64Text, decode_base64, load_json_b64_views
from ttapi_mcp.api.models import ImagesResponse


def as_plain(node: Any) -> Any:
    """The parsed value with every view turned back into the str it stands for."""
    if isinstance(node, B64Text):
        return bytes(node).decode("utf-8")
    if isinstance(node, dict):
        return {k: as_plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [as_plain(v) for v in node]
    return node


def test_each_image_value_is_a_view_that_decodes_to_the_bytes() -> None:
    images = [bytes(range(256)) * 40, b"\x89PNG\r\n\x1a\n" + b"x" * 1001]
    body = json.dumps({
        "created": 1, "data": [{"b64_json": base64.b64encode(i).decode(),
                                "revised_prompt": "a \"quoted\" cat"} for i in images],
        "usage": {"total_tokens": 5},
    }).encode()

    payload = load_json_b64_views(bytearray(body))

    values = [item["b64_json"] for item in payload["data"]]
    assert all(isinstance(v, B64Text) for v in values)
    assert [decode_base64(v) for v in values] == images
    assert payload["data"][0]["revised_prompt"] == 'a "quoted" cat'
    assert payload["usage"] == {"total_tokens": 5}
    assert "base64 text" in repr(values[0]) and len(repr(values[0])) < 60
    parsed = ImagesResponse.model_validate(payload)
    assert decode_base64(parsed.data[1].b64_json or "") == images[1]


def views_in(node: Any) -> int:
    if isinstance(node, B64Text):
        return 1
    if isinstance(node, dict):
        return sum(views_in(v) for v in node.values())
    if isinstance(node, list):
        return sum(views_in(v) for v in node)
    return 0


@pytest.mark.parametrize("body, views", [
    # a value with an escape is left to json.loads, which unescapes it
    (rb'{"data": [{"b64_json": "ab\/c"}]}', 0),
    # the key spelled with an escape; spaces around the colon
    (rb'{"data": [{"b6\u0034_json" : "QUJD"}]}', 0),
    (rb'{"data": [{"b64_json"  :  "QUJD" }]}', 1),
    # the key's text inside another string is not a key
    (rb'{"note": "\"b64_json\": \"QUJD\"", "data": []}', 0),
    # an escaped quote, then escaped backslashes right before a closing quote
    (rb'{"q": "\"", "b64_json": "QUJD"}', 1),
    (rb'{"a": "x\\\\", "b64_json": "QUJD", "c": "\\\"b64_json\\\""}', 1),
    # b64_json as a value, not a key; and with a value that is not a string
    (rb'{"k": "b64_json", "b64_json": null, "x": ["b64_json", 1]}', 0),
    # an empty value; two values for one key (the last one counts, as in json.loads)
    (rb'{"data": [{"b64_json": "", "url": "http://127.0.0.1/x"}]}', 1),
    (rb'{"b64_json": "QUJD", "b64_json": "RUZH"}', 1),
])
def test_matches_json_loads_on_awkward_bodies(body: bytes, views: int) -> None:
    payload = load_json_b64_views(body)
    assert as_plain(payload) == json.loads(body)
    assert views_in(payload) == views


def test_an_escaped_value_stays_a_str_and_still_decodes() -> None:
    payload = load_json_b64_views(rb'{"b64_json": "QU\/D"}')
    assert payload["b64_json"] == "QU/D"
    assert decode_base64(payload["b64_json"]) == base64.b64decode("QU/D")


def test_upstream_text_that_looks_like_a_marker_is_kept_as_sent() -> None:
    fake = "\\u0000b64:0000000000000000:0"
    body = f'{{"data": [{{"b64_json": "QUJD"}}, {{"b64_json": "{fake}"}}]}}'.encode()
    payload = load_json_b64_views(body)
    assert decode_base64(payload["data"][0]["b64_json"]) == b"ABC"
    assert payload["data"][1]["b64_json"] == "\x00b64:0000000000000000:0"


@pytest.mark.parametrize("body", [
    b'{"data": [{"b64_json": "QUJD',  # cut short inside the value
    b'{"data": [{"b64_json": "QUJD"}',  # cut short after it
    b'<html>502 Bad Gateway</html>',
    b'{"data": [{"b64_json": "QUJD", "x": "\xff"}]}',  # not UTF-8 outside the value
    b'',
])
def test_not_json_is_a_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):
        load_json_b64_views(body)


@pytest.mark.parametrize("text, problem", [
    ("QUJD\nRA==", "corrupt"),
    ("QUJ", "corrupt"),
    ("QU=D", "corrupt"),
    ("QUJD\u00e9", "corrupt"),
])
def test_strict_decoding_rejects_what_is_not_clean_base64(text: str, problem: str) -> None:
    body = json.dumps({"b64_json": text}).encode()
    value = load_json_b64_views(body)["b64_json"]
    with pytest.raises(ValueError, match=problem):
        decode_base64(value)
    with pytest.raises(ValueError, match=problem):
        decode_base64(text)


json_text = st.text(alphabet=st.sampled_from('ab/+="\\\u00e9\u4e2d\n :{}[],'), max_size=12)
json_keys = st.one_of(st.just("b64_json"), json_text)
documents = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), json_text),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(json_keys, inner, max_size=4)),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(doc=documents, indent=st.sampled_from([None, 1]), ascii_only=st.booleans())
def test_any_document_reads_as_json_loads_reads_it(doc: Any, indent: int | None,
                                                   ascii_only: bool) -> None:
    body = json.dumps(doc, indent=indent, ensure_ascii=ascii_only).encode()
    assert as_plain(load_json_b64_views(bytearray(body))) == json.loads(body)


def test_a_failed_parse_leaves_the_body_free() -> None:
    body = bytearray(b'{"data": [{"b64_json": "QUJD"}], "broken": }')
    with pytest.raises(ValueError) as caught:
        load_json_b64_views(body)
    assert caught.value.__traceback__ is not None  # kept, as an error report would keep it
    body.clear()  # BufferError if a view over it were still alive


@pytest.mark.parametrize("value", [b"QU\nJD", b"QU\xffJD", b"QU\x01JD"])
def test_bytes_json_refuses_inside_a_value_make_only_that_image_corrupt(value: bytes) -> None:
    body = b'{"data": [{"b64_json": "QUJD"}, {"b64_json": "' + value + b'"}]}'
    with pytest.raises(ValueError):
        json.loads(body)  # the whole answer would have been lost
    good, bad = load_json_b64_views(body)["data"]
    assert decode_base64(good["b64_json"]) == b"ABC"
    with pytest.raises(ValueError, match="corrupt"):
        decode_base64(bad["b64_json"])


def test_a_response_with_views_still_serialises() -> None:
    payload = load_json_b64_views(b'{"created": 1, "data": [{"b64_json": "QUJD"}]}')
    dumped = json.loads(ImagesResponse.model_validate(payload).model_dump_json())
    assert dumped["data"][0]["b64_json"] == "QUJD"


def test_a_released_value_lets_go_of_the_body() -> None:
    """The body stays pinned (cannot be resized) while any value views it, and is free
    once every value is released: the server releases each after decoding it."""
    images = [b"first image", b"second image"]
    body = bytearray(json.dumps({"created": 1, "data": [
        {"b64_json": base64.b64encode(i).decode()} for i in images]}).encode())
    values = [item["b64_json"] for item in load_json_b64_views(body)["data"]]

    assert decode_base64(values[0]) == images[0]
    values[0].release()
    assert len(values[0]) == 0 and values[0].text() == ""
    with pytest.raises(BufferError):
        body.extend(b" ")  # the second value still views it
    assert decode_base64(values[1]) == images[1]
    values[1].release()
    values[1].release()  # twice is harmless
    body.extend(b" ")


def _strict(source: bytes) -> bytes | None:
    """What binascii's strict mode gives (None: refused): the rule decode_base64 keeps."""
    import binascii

    try:
        return binascii.a2b_base64(source, strict_mode=True)
    except (binascii.Error, ValueError):
        return None


base64_like = st.text(alphabet=st.sampled_from("ABQRwz09+/====\n -_\x00\u00e9"), max_size=16)


@settings(max_examples=2000, deadline=None)
@given(text=base64_like, as_view=st.booleans())
def test_decoding_accepts_exactly_what_strict_binascii_accepts(text: str,
                                                               as_view: bool) -> None:
    """The SIMD decoder goes first; whatever it does, the answer is binascii's."""
    raw = text.encode("utf-8")
    value: str | B64Text = B64Text(memoryview(bytearray(raw))) if as_view else text
    expected = _strict(raw)
    if expected is None:
        with pytest.raises(ValueError, match="corrupt"):
            decode_base64(value)
    else:
        assert decode_base64(value) == expected


def test_a_large_image_decodes_through_the_fast_path_to_the_same_bytes() -> None:
    pytest.importorskip("pybase64._pybase64")
    from ttapi_mcp.api import b64values

    assert b64values._simd_b64decode is not None  # the dependency's compiled part loaded
    image = bytes(range(256)) * 12_000
    text = base64.b64encode(image)
    assert decode_base64(B64Text(memoryview(bytearray(text)))) == image
    assert decode_base64(text.decode()) == image
