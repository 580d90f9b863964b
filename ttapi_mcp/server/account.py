"""The ``ttapi://account`` resource: balance, frozen balance and queue limit (§11.7).

Read on demand (each read asks TTAPI once); the account e-mail is never part of it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError

if TYPE_CHECKING:
    from ttapi_mcp.service import Services

ACCOUNT_URI = "ttapi://account"


async def account_json(services: Services) -> str:
    from ttapi_mcp.service import ServiceError
    from ttapi_mcp.service.account import read_account

    try:
        return json.dumps(await read_account(services), indent=2)
    except ServiceError as exc:
        raise ResourceError(str(exc)) from None


def register_account(server: MCPServer) -> None:
    """Declare the resource; TTAPIServer.read_resource answers it (it needs the services)."""

    @server.resource(
        ACCOUNT_URI, name="account", title="TTAPI account balance",
        description="The TTAPI balance in quota and dollars (1 USD = 100 quota), the quota "
        "held by running jobs, the queue limit, and a warning when the balance is low.",
        mime_type="application/json",
    )
    def account() -> str:
        # Never called: see TTAPIServer.read_resource.
        return "{}"
