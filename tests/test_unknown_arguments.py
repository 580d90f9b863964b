"""An argument a tool does not know is refused with one clear error, never dropped."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import CANARY_KEY, mcp_client

from ttapi_mcp.emulator import Emulator
from ttapi_mcp.server.strictargs import unknown_arguments_message

pytestmark = pytest.mark.anyio

# (tool, valid arguments, misspelt key, the known name it should suggest)
CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("generate_image", {"prompt": "a cat"}, "sizee", "size"),
    ("edit_image", {"prompt": "a cat", "images": ["data:image/png;base64,AA=="]},
     "imagess", "images"),
    ("gpt4o_image", {"prompt": "draw a cat"}, "refer_image", "refer_images"),
    ("fetch_job", {"job_id": "local-x"}, "wiat", "wait"),
]


@pytest.mark.parametrize(("tool", "args", "wrong", "meant"), CASES)
async def test_every_tool_refuses_an_unknown_argument_before_anything_is_sent(
    server_settings: Any, emulator: Emulator, client_mode: str,
    tool: str, args: dict[str, Any], wrong: str, meant: str,
) -> None:
    async with mcp_client(server_settings, client_mode) as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
        known = list(listed[tool].input_schema["properties"])
        result = await client.call_tool(tool, {**args, wrong: "1536x1024", "zzqx": 1})
    assert result.is_error
    text = result.content[0].text
    assert f"'{wrong}' (did you mean '{meant}'?)" in text
    assert "'zzqx'" in text and "'zzqx' (did you mean" not in text
    assert "arguments are: " + ", ".join(known) in text
    assert CANARY_KEY not in text
    assert emulator.api_requests() == []


async def test_the_reported_case_no_longer_pays_for_the_default_size(
    server_settings: Any, emulator: Emulator, client_mode: str
) -> None:
    async with mcp_client(server_settings, client_mode) as client:
        result = await client.call_tool(
            "generate_image", {"prompt": "a cat", "sizee": "1536x1024"})
        size_ok = await client.call_tool(
            "generate_image", {"prompt": "a cat", "size": "1536x1024", "preview": "none"})
    assert result.is_error and "sizee" in result.content[0].text
    assert not size_ok.is_error
    assert size_ok.structured_content["images"][0]["width"] == 1536
    assert len(emulator.api_requests("E1")) == 1


async def test_every_input_schema_declares_no_other_arguments(server_settings: Any) -> None:
    async with mcp_client(server_settings) as client:
        tools = (await client.list_tools()).tools
    assert len(tools) >= 4
    for tool in tools:
        assert tool.input_schema.get("additionalProperties") is False, tool.name


def test_known_arguments_pass_and_the_message_is_plural_for_several() -> None:
    assert unknown_arguments_message("t", ["a"], ["a", "b"]) is None
    text = unknown_arguments_message("t", ["aa", "bb", "a"], ["a", "b"])
    assert text is not None and "arguments 'aa'" in text and "'bb'" in text


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_unknown_argument_is_refused_over_real_streamable_http(
    server_settings: Any, emulator: Emulator, mode: str
) -> None:
    from conftest import serve_http
    from mcp import Client

    with serve_http(server_settings) as origin:
        async with Client(origin + "/mcp", mode=mode) as client:
            result = await client.call_tool("gpt4o_image", {"prompt": "draw", "ratio": "1:1"})
    assert result.is_error
    assert "'ratio'" in result.content[0].text
    assert emulator.api_requests() == []
