"""Writing this server's entry into MCP clients' configuration files (`ttapi-mcp install`)."""

from .clients import CLIENTS, Client, client_from_info, config_path, current_platform
from .command import Request, install, obtain_key, uninstall
from .files import InstallError

__all__ = ["CLIENTS", "Client", "InstallError", "Request", "client_from_info", "config_path",
           "current_platform", "install", "obtain_key", "uninstall"]
