"""The in-place JSON/JSONC editor behind `install`: arbitrary files, exact round trips."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttapi_mcp.install.jsonedit import JSONEditError, parse, remove_member, set_member

keys = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8)
scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=10) | st.floats(
    allow_nan=False, allow_infinity=False)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(keys, inner, max_size=3), max_leaves=8)
ENTRY = {"command": "/opt/ttapi mcp/bin/ttapi-mcp", "args": ["serve"],
         "env": {"TTAPI_API_KEY": "k\"\\é", "TTAPI_OUTPUT_DIR": "C:\\Users\\me"}}


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(keys.filter(lambda k: k != "mcpServers"), values, max_size=4),
       st.dictionaries(keys.filter(lambda k: k != "ttapi"), values, max_size=3),
       st.sampled_from([None, 0, 2, 4, "\t"]), st.booleans())
def test_set_then_remove_keeps_everything_else(
    others: dict[str, Any], servers: dict[str, Any], indent: Any, crlf: bool
) -> None:
    text = json.dumps({**others, "mcpServers": servers}, indent=indent, ensure_ascii=False)
    if crlf:
        text = text.replace("\n", "\r\n")
    edited = set_member(text, ["mcpServers", "ttapi"], ENTRY)
    assert json.loads(edited) == {**others, "mcpServers": {**servers, "ttapi": ENTRY}}
    if "\r\n" in text:
        assert "\n" not in edited.replace("\r\n", ""), "CRLF files keep CRLF line ends"
    again = set_member(edited, ["mcpServers", "ttapi"], {"command": "x"})
    assert json.loads(again)["mcpServers"]["ttapi"] == {"command": "x"}
    restored = remove_member(edited, ["mcpServers", "ttapi"])
    assert json.loads(restored) == json.loads(text)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(keys, values, max_size=4))
def test_parse_agrees_with_the_json_module(data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2)
    assert parse(text).value == json.loads(text)


def test_missing_objects_are_created_and_comments_kept() -> None:
    text = '{\n  // keep me\n  "inputs": [], /* and me */\n}\n'
    edited = set_member(text, ["servers", "ttapi"], ENTRY, comments=True)
    assert "// keep me" in edited and "/* and me */" in edited
    assert parse(edited, comments=True).value == {"inputs": [], "servers": {"ttapi": ENTRY}}
    assert remove_member(edited, ["servers", "ttapi"], comments=True).count("keep me") == 1


@pytest.mark.parametrize("text", ['{"a": 1,}', '{"a": 1} // c', '{"a" 1}', '{"a": [1, 2}',
                                  '{"a": "unterminated}', '{"a": tru}', '', '{} {}'])
def test_invalid_json_is_refused_with_a_position(text: str) -> None:
    with pytest.raises(JSONEditError, match=r"line \d+, column \d+|end of file"):
        parse(text)
