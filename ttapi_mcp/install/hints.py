"""What a server started without a key tells its client: which file to edit, or what to run.

A desktop client starts the server out of sight, so the first tool call's error is where a
newcomer learns that the key is missing. The client names itself in MCP's clientInfo;
when it is one `ttapi-mcp install` knows, the message names that client's file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from .clients import CLIENTS, Platform, client_from_info, config_path


def missing_key_message(client_name: str | None, platform: Platform | None = None,
                        home: Path | None = None, env: Mapping[str, str] | None = None) -> str:
    head = ("No TTAPI API key is configured, so nothing was sent to TTAPI (nothing was "
            "billed). ")
    tail = ('(Or put "api_key" in a JSON config file passed with --config or '
            "TTAPI_MCP_CONFIG.)")
    client = client_from_info(client_name)
    if client is not None:
        path = config_path(client.name, platform, home, env)
        return (f"{head}This server runs in {client.title}. In a terminal, run "
                f"`ttapi-mcp install {client.name}`: it asks for the key without showing it "
                f"and writes it to {path}. Or edit that file yourself: set TTAPI_API_KEY in "
                f'the "env" of this server\'s entry. Then {client.restart}. {tail}')
    files = "; ".join(f"{c.title}: {config_path(c.name, platform, home, env)}"
                      for c in CLIENTS.values())
    return (f"{head}In a terminal, run `ttapi-mcp install CLIENT` (CLIENT is one of "
            f"{', '.join(CLIENTS)}): it asks for the key without showing it and writes it to "
            "the client's configuration file. Or set the environment variable TTAPI_API_KEY "
            'in the "env" of this server\'s entry in your MCP client\'s configuration '
            f"({files}), then restart the client. {tail}")
