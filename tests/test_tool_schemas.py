"""The tool listing a model reads every session: compact, and still teaching on a mistake."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from conftest import mcp_client

from ttapi_mcp.emulator import Emulator
from ttapi_mcp.server.schemas import compact_input_schema, compact_output_schema
from ttapi_mcp.service.results import ImageToolResult, NextCall, SavedImage

pytestmark = pytest.mark.anyio

FOUR = ("generate_image", "edit_image", "gpt4o_image", "fetch_job")


def _walk(node: Any) -> list[dict[str, Any]]:
    """Every schema node (dict) under ``node``, property maps excluded."""
    found: list[dict[str, Any]] = []
    if isinstance(node, list):
        for item in node:
            found += _walk(item)
    elif isinstance(node, dict):
        found.append(node)
        for key, value in node.items():
            if key in ("properties", "$defs"):
                for sub in value.values():
                    found += _walk(sub)
            else:
                found += _walk(value)
    return found


def _seen_bytes(tool: Any) -> int:
    """What a model sees of a tool: name, title, description and input schema."""
    return len(json.dumps({"name": tool.name, "title": tool.title,
                           "description": tool.description,
                           "inputSchema": tool.input_schema}, separators=(",", ":")))


async def test_listing_has_no_pydantic_boilerplate(server_settings: Any) -> None:
    async with mcp_client(server_settings) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    for name in FOUR:
        tool = tools[name]
        for schema in (tool.input_schema, tool.output_schema):
            for node in _walk(schema):
                assert not isinstance(node.get("title"), str), (name, node)
                assert "default" not in node or node["default"] is not None, (name, node)
        for arg, prop in tool.input_schema["properties"].items():
            assert {"type": "null"} not in prop.get("anyOf", []), (name, arg)
    # Measured in bench/ (figure 1 of the context rows); here only that it did not regress
    # to the untrimmed listing, which was 15.7 KB for the four tools.
    assert sum(_seen_bytes(tools[name]) for name in FOUR) < 12_000


def test_compact_output_schema_accepts_real_results_with_nulls() -> None:
    schema = compact_output_schema(ImageToolResult.model_json_schema())
    image = SavedImage(index=0, id="img-1", path="/tmp/a.png", uri="ttapi://images/img-1",
                       mime="image/png", bytes=10)
    done = ImageToolResult(status="completed", model="gpt-image-1", images=[image])
    pending = ImageToolResult(status="pending", model="gpt-4o-image", job_id="j1",
                              next_call=NextCall(tool="fetch_job", arguments={"job_id": "j1"}))
    for result in (done, pending):
        jsonschema.validate(result.model_dump(mode="json"), schema)
    assert schema["properties"]["status"]["description"]  # the one a model must act on
    bad = {**done.model_dump(mode="json"), "status": "finished"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    no_path = done.model_dump(mode="json")
    del no_path["images"][0]["path"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(no_path, schema)


def test_compact_input_schema_keeps_types_bounds_and_enums() -> None:
    schema = compact_input_schema({
        "type": "object", "title": "Args",
        "properties": {
            "title": {"title": "Title", "type": "string", "description": "a property named title"},
            "n": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 10}, {"type": "null"}],
                  "default": None, "title": "N", "description": "count"},
            "wait": {"type": "boolean", "default": True, "title": "Wait"},
        },
        "required": ["title"],
    })
    assert schema == {
        "type": "object",
        "properties": {
            "title": {"type": "string", "description": "a property named title"},
            "n": {"type": "integer", "minimum": 1, "maximum": 10, "description": "count"},
            "wait": {"type": "boolean", "default": True},
        },
        "required": ["title"],
    }


async def test_wrong_values_still_get_one_error_listing_every_problem_and_what_is_allowed(
    server_settings: Any, emulator: Emulator
) -> None:
    async with mcp_client(server_settings) as client:
        result = await client.call_tool("generate_image", {
            "prompt": "a harbour", "model": "dall-e-3", "n": 2, "size": "999x999",
            "quality": "low", "background": "transparent"})
    assert result.is_error
    text = result.content[0].text
    for problem in ("n", "size", "quality", "background"):
        assert problem in text, (problem, text)
    assert "1024x1792" in text and "hd" in text  # what dall-e-3 allows instead
    assert emulator.api_requests() == []
