"""Unknown tool arguments are refused, never dropped.

The SDK's argument models ignore extra keys, so ``generate_image(sizee="1536x1024")``
would silently pay for the default size. Here each call's keys are checked against the
tool's declared arguments before anything runs; the schema says so too
(``additionalProperties: false``), for clients that read it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools.base import Tool


def known_arguments(tool: Tool) -> list[str]:
    """The argument names the caller may send, in declaration order."""
    return [field.alias or name for name, field in tool.fn_metadata.arg_model.model_fields.items()]


def unknown_arguments_message(tool_name: str, given: Iterable[str], known: list[str]) -> str | None:
    """One message naming every unknown argument and its closest known name, or None."""
    unknown = [name for name in given if name not in known]
    if not unknown:
        return None
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        parts.append(f"{name!r}{hint}")
    noun = "argument" if len(unknown) == 1 else "arguments"
    return (
        f"{tool_name} does not know the {noun} {', '.join(parts)}. Its arguments are: "
        f"{', '.join(known)}. Nothing was sent to TTAPI and nothing was billed; "
        "repeat the call with the right names."
    )


def check_arguments(tool: Tool, arguments: Mapping[str, Any]) -> None:
    """Raise ToolError (the caller's mistake) when ``arguments`` has a key ``tool`` lacks."""
    message = unknown_arguments_message(tool.name, arguments.keys(), known_arguments(tool))
    if message is not None:
        raise ToolError(f"Error executing tool {tool.name}: {message}")


def forbid_extra_in_schema(tools: Iterable[Tool]) -> None:
    """Declare in each input schema that no other argument is accepted."""
    for tool in tools:
        tool.parameters["additionalProperties"] = False
