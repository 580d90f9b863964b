"""Base64 image values read straight from the received body, never copied into a str.

An image answer is almost all base64 text (3 MB for one 1024x1024 PNG, tens of MB for
ten). ``json.loads`` over the whole body costs about 1.2 ms per MB and holds the text
twice (the decoded body, then the parsed strings). Instead, each ``"b64_json"`` string
value is cut out of the body, the small remainder is parsed, and the value is kept as a
:class:`B64Text` view over the received bytes, decoded only when the image is saved.

The cut is exact for valid JSON: a string ends at the first quote after its opening
one that is preceded by an even number of backslashes. A value that contains any
backslash (an escape) is left in place for ``json.loads`` to unescape. The cut values
are replaced by markers with a per-body random nonce, so no upstream text can pose as one.
A cut value is not checked as JSON text: one with bytes that ``json.loads`` refuses
(control characters, invalid UTF-8) fails the strict base64 decode instead, so that one
image is reported corrupt and the answer's other images are still saved.
"""

from __future__ import annotations

import binascii
import json
import secrets
from collections.abc import Callable
from typing import Any

from pydantic_core import core_schema

_QUOTE = ord('"')
_BACKSLASH = ord("\\")
_COLON = ord(":")
_SPACE = b" \t\r\n"
_KEY = b"b64_json"


class B64Text:
    """A base64 value that still lives in the received body."""

    __slots__ = ("_view",)

    def __init__(self, view: memoryview) -> None:
        self._view = view

    def __len__(self) -> int:
        return len(self._view)

    def __bytes__(self) -> bytes:
        return bytes(self._view)

    def __repr__(self) -> str:  # never the 3 MB of text
        return f"<base64 text, {len(self._view)} characters>"

    def text(self) -> str:
        """The value as a str: what ``model_dump`` gives for it."""
        return str(self._view, "utf-8", "replace")

    def release(self) -> None:
        """Let go of the body once the image is decoded: the body is freed when its last
        value is released, before the thumbnail's pixels need the memory. The value is
        empty afterwards."""
        view, self._view = self._view, memoryview(b"")
        view.release()

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.is_instance_schema(
            cls, serialization=core_schema.plain_serializer_function_ser_schema(cls.text))


_simd_b64decode: Callable[..., bytes] | None
try:  # libbase64's SIMD decoder: 0.1-0.2 ms for a 3.2 MB image where binascii takes 6-7
    from pybase64._pybase64 import b64decode as _simd_b64decode
except ImportError:  # only its compiled part is worth having; binascii does the rest
    _simd_b64decode = None


def decode_base64(value: str | B64Text) -> bytes:
    """Strict decode: any character outside the alphabet, or bad padding, is an error.

    ``binascii`` in strict mode rejects what ``b64decode(validate=True)`` rejects, without
    the regular-expression pass that makes the latter 1.8x slower on a 3 MB image. The
    SIMD decoder goes first: what it accepts, binascii accepts with the same bytes (it is
    the stricter of the two, see tests/test_b64values.py), and what it refuses is left to
    binascii, so exactly binascii's strict inputs decode. Raises ``ValueError``.
    """
    source = value._view if isinstance(value, B64Text) else value
    if _simd_b64decode is not None:
        try:
            return _simd_b64decode(source, validate=True)
        except (ValueError, TypeError):
            pass
    try:
        return binascii.a2b_base64(source, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"the base64 data is corrupt ({exc})") from None


def load_json_b64_views(body: bytes | bytearray) -> Any:
    """``json.loads`` of the body, with every ``b64_json`` string value as a :class:`B64Text`.

    Raises ``ValueError`` (including ``UnicodeDecodeError``) when the body is not JSON.
    The views keep ``body`` alive, and it must not be changed while they exist.
    """
    if b'"b64_json"' not in body:  # error bodies, job status: nothing to cut
        return json.loads(str(body, "utf-8"))
    nonce = secrets.token_hex(8)
    skeleton, spans = _cut_values(body, nonce)
    payload = json.loads(str(skeleton, "utf-8"))
    if not spans:
        return payload
    view = memoryview(body)
    markers = {_marker(nonce, k): B64Text(view[start:end]) for k, (start, end) in enumerate(spans)}
    return _restore(payload, markers)


def _marker(nonce: str, index: int) -> str:
    return f"\x00b64:{nonce}:{index}"


def _cut_values(
    body: bytes | bytearray, nonce: str
) -> tuple[bytes | bytearray, list[tuple[int, int]]]:
    """The body with each ``b64_json`` value replaced by a marker string, and where the
    values were (from the first character to the closing quote)."""
    values: list[tuple[int, int]] = []
    kept_from = 0
    with memoryview(body) as view:  # the kept parts are copied once, by the join
        parts: list[memoryview | bytes] = []
        at = body.find(b'"')
        while at >= 0:
            end = _string_end(body, at)
            if end < 0:
                break  # unterminated: json.loads reports it
            value_end = _b64_value_after(body, at, end)
            if value_end < 0:
                at = body.find(b'"', end + 1)
                continue
            value_start = body.find(b'"', end + 1)
            marker = json.dumps(_marker(nonce, len(values))).encode("ascii")
            parts += [view[kept_from:value_start], marker]
            values.append((value_start + 1, value_end))
            kept_from = value_end + 1
            at = body.find(b'"', kept_from)
        parts.append(view[kept_from:])
        skeleton = b"".join(parts) if values else body
        for part in parts:  # no view may outlive the body's parse
            if isinstance(part, memoryview):
                part.release()
    return skeleton, values


def _string_end(body: bytes | bytearray, start: int) -> int:
    """Index of the quote closing the string that opens at ``start``, or -1."""
    end = body.find(b'"', start + 1)
    while end >= 0:
        slashes = 0
        while body[end - 1 - slashes] == _BACKSLASH:
            slashes += 1
        if slashes % 2 == 0:
            return end
        end = body.find(b'"', end + 1)
    return -1


def _b64_value_after(body: bytes | bytearray, key_start: int, key_end: int) -> int:
    """When the string at ``key_start`` is the key ``b64_json`` followed by a string value
    without escapes, the index of that value's closing quote; else -1."""
    if key_end - key_start - 1 != len(_KEY) or body[key_start + 1:key_end] != _KEY:
        return -1
    colon = _skip_space(body, key_end + 1)
    if colon >= len(body) or body[colon] != _COLON:
        return -1
    value = _skip_space(body, colon + 1)
    if value >= len(body) or body[value] != _QUOTE:
        return -1
    end = _string_end(body, value)
    if end < 0 or body.find(b"\\", value + 1, end) >= 0:
        return -1
    return end


def _skip_space(body: bytes | bytearray, at: int) -> int:
    while at < len(body) and body[at] in _SPACE:
        at += 1
    return at


def _restore(node: Any, markers: dict[str, B64Text]) -> Any:
    """Put each cut value back where its marker landed (only ever under a b64_json key)."""
    if isinstance(node, dict):
        for key, child in node.items():
            if key == "b64_json" and isinstance(child, str) and child in markers:
                node[key] = markers[child]
            else:
                _restore(child, markers)
    elif isinstance(node, list):
        for child in node:
            _restore(child, markers)
    return node
