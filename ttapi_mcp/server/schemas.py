"""Tool schemas as small as what they say: a model reads them at every session start.

Pydantic's schemas repeat a ``title`` for every property (the name, capitalised), spell
an optional argument as ``anyOf: [X, {type: null}]`` with ``default: null``, and give
every class its docstring. None of it tells the calling model anything the name and the
description do not. Arguments are still validated by the tools' pydantic models, and a
wrong value still gets one error naming every problem and what is allowed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mcp.server.mcpserver.tools.base import Tool

_NULL = {"type": "null"}


def _without_null(branches: list[Any]) -> list[Any]:
    return [b for b in branches if b != _NULL]


def _compact(node: Any, *, nullable: bool) -> Any:
    """``node`` without titles and null defaults; optional values said once.

    ``nullable`` (output schemas) keeps null allowed, as ``type: [T, "null"]``; input
    schemas drop the null branch, since leaving an argument out is how a caller asks for
    its default."""
    if isinstance(node, list):
        return [_compact(item, nullable=nullable) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str):
            continue
        if key == "default" and value is None:
            continue
        if key in ("properties", "$defs"):
            out[key] = {name: _compact(sub, nullable=nullable) for name, sub in value.items()}
        else:
            out[key] = _compact(value, nullable=nullable)
    branches = out.get("anyOf")
    if isinstance(branches, list) and _NULL in branches:
        rest = _without_null(branches)
        if len(rest) == 1 and isinstance(rest[0], dict):
            only = rest[0]
            simple = isinstance(only.get("type"), str) and "enum" not in only
            if not nullable:
                del out["anyOf"]
                out = {**only, **out}
            elif simple:
                del out["anyOf"]
                out = {**only, **out, "type": [only["type"], "null"]}
    return out


def compact_input_schema(schema: dict[str, Any]) -> dict[str, Any]:
    return dict(_compact(schema, nullable=False))


def _strip_descriptions(node: dict[str, Any], keep: frozenset[str]) -> None:
    for name, prop in node.get("properties", {}).items():
        if name not in keep:
            prop.pop("description", None)
        if prop.get("additionalProperties") is True:  # JSON Schema's default
            del prop["additionalProperties"]


def compact_output_schema(schema: dict[str, Any],
                          keep: frozenset[str] = frozenset({"status"})) -> dict[str, Any]:
    """The output schema as types only, still accepting every result the tools produce
    (nulls included). The values name themselves (path, uri, width...); the one a model
    must read to act, ``status``, keeps its description. The tool descriptions say what
    a result holds, and the text block of every result says it again in words."""
    compact = dict(_compact(schema, nullable=True))
    compact.pop("description", None)
    _strip_descriptions(compact, keep)
    definitions = compact.pop("$defs", {})
    for definition in definitions.values():
        definition.pop("description", None)
        _strip_descriptions(definition, keep)
    return dict(_inline(compact, definitions))


def _inline(node: Any, definitions: dict[str, Any]) -> Any:
    """Each ``$ref`` replaced by its definition (ours are used once each and never
    recursive); ``anyOf: [object, null]`` becomes ``type: ["object", "null"]``."""
    if isinstance(node, list):
        return [_inline(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return _inline(definitions[ref.removeprefix("#/$defs/")], definitions)
    out = {key: _inline(value, definitions) for key, value in node.items()}
    branches = out.get("anyOf")
    if isinstance(branches, list) and _NULL in branches:
        rest = _without_null(branches)
        if len(rest) == 1 and rest[0].get("type") == "object":
            del out["anyOf"]
            out = {**rest[0], **out, "type": ["object", "null"]}
    return out


def compact_tool_schemas(tools: Iterable[Tool]) -> None:
    """Replace each tool's published schemas by their compact forms (validation is
    unchanged: it uses the tools' pydantic models, not these dicts)."""
    for tool in tools:
        tool.parameters = compact_input_schema(tool.parameters)
        if tool.fn_metadata.output_schema is not None:
            tool.fn_metadata.output_schema = compact_output_schema(tool.fn_metadata.output_schema)
