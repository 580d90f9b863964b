"""The `ttapi-mcp` command: serve, demo, emulator, doctor, install, uninstall.

Heavy modules (the server, Pillow, the emulator) are imported inside each
command, so `--help` and a stdio start stay fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from ttapi_mcp.about import installation
from ttapi_mcp.config import CONFIG_ENV_VAR, ConfigError, Settings, load_settings

EXAMPLES = """\
examples:
  ttapi-mcp demo "a lighthouse at dusk"         try everything on the built-in emulator, no key
  TTAPI_API_KEY=... ttapi-mcp serve              serve MCP over stdio (what desktop clients run)
  ttapi-mcp serve --transport http --port 8000   serve streamable HTTP at http://127.0.0.1:8000/mcp
  ttapi-mcp serve --base-url https://api.ttapi.org   TTAPI's gateway for slow gpt-image-1 calls
  ttapi-mcp emulator --port 9000                 run the TTAPI emulator for your own experiments
  ttapi-mcp serve --set wait_budget_seconds=40   any configuration key, from the command line
  ttapi-mcp gallery                              browse the saved images in a web browser
  ttapi-mcp doctor --fix                         check key, network, folder and store; repair
  ttapi-mcp install claude-desktop               add this server to a client (key: hidden prompt)
  ttapi-mcp usage --by day --since 2026-01-01    what was spent, and the budgets left

configuration: defaults < JSON file (--config or TTAPI_MCP_CONFIG) < environment (TTAPI_<KEY>)
< command-line flags. See config.example.json for every key.
"""


def _add_settings_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="PATH",
                        help=f"JSON configuration file (default: ${CONFIG_ENV_VAR})")
    parser.add_argument("--base-url", help="TTAPI origin, e.g. https://api.ttapi.io")
    parser.add_argument("--output-dir", metavar="DIR", help="where images are saved")
    parser.add_argument("--database-path", metavar="PATH", help="SQLite store file")
    parser.add_argument("--preview", choices=["sheet", "thumbnail", "full", "none"],
                        help="inline preview in tool results")
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="set any configuration key (VALUE is JSON or text); repeatable")


CLIENT_NAMES = ("claude-code", "claude-desktop", "cursor", "vscode", "windsurf")


def _add_install_commands(commands: Any) -> None:
    for name, text in (("install", "add this server to an MCP client's configuration"),
                       ("uninstall", "remove this server from an MCP client's configuration")):
        sub = commands.add_parser(name, help=text, description=text + ". The key comes from "
                                  "TTAPI_API_KEY or a hidden prompt, never from the command "
                                  "line; other servers and settings in the file are kept.")
        sub.add_argument("client", choices=CLIENT_NAMES)
        sub.add_argument("--name", default="ttapi", help="the server's name in the client "
                         "(default: ttapi)")
        sub.add_argument("--file", metavar="PATH", help="edit this file instead of the "
                         "client's user-level configuration (e.g. a project's .vscode/mcp.json)")
        sub.add_argument("--dry-run", action="store_true",
                         help="show the change (key masked) without writing anything")
        if name == "install":
            sub.add_argument("--uvx", action="store_true", help="run the server with `uvx "
                             "ttapi-mcp serve` instead of this installation's absolute path")
            sub.add_argument("--uvx-from", metavar="SOURCE", help="with uvx: a wheel file or "
                             "git URL to run (`uvx --from SOURCE ttapi-mcp serve`)")
            sub.add_argument("--output-dir", metavar="DIR", help="where the images go "
                             "(default: kept from the entry, else the platform's data folder)")
            sub.add_argument("--base-url", help="TTAPI origin to write into the entry")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ttapi-mcp",
        description="MCP server for TTAPI image models: gpt-image-1, gpt-image-1.5, "
        "gpt-image-2, dall-e-2, dall-e-3, and image jobs (GPT-4o image, gpt-image-2-plus).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=installation())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the MCP server (stdio by default)")
    serve.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    serve.add_argument("--host", help="HTTP bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="HTTP port (default 8000)")
    _add_settings_flags(serve)

    demo = commands.add_parser(
        "demo", help="generate an image through the whole product on the built-in emulator")
    demo.add_argument("prompt", nargs="?", help="what to draw")
    _add_settings_flags(demo)

    doctor = commands.add_parser(
        "doctor", help="check configuration, key, network, output folder and store")
    doctor.add_argument("--fix", action="store_true",
                        help="remove stale temporary files, record image files that have no "
                        "record, drop records of deleted files (never deletes an image)")
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    _add_settings_flags(doctor)

    _add_install_commands(commands)
    gallery = commands.add_parser(
        "gallery", help="browse the saved images in a web browser (read-only, 127.0.0.1)")
    gallery.add_argument("--port", type=int, default=0, help="port (default: any free one)")
    gallery.add_argument("--no-browser", action="store_true", help="only print the link")
    gallery.add_argument("--link", action="store_true",
                         help="print a signed link into the HTTP server's /gallery instead")
    _add_settings_flags(gallery)
    usage = commands.add_parser(
        "usage", help="what was spent (estimates and reported quota) and the budgets left")
    usage.add_argument("--since", metavar="DATE",
                       help="from this date on (YYYY-MM-DD; default: this month)")
    usage.add_argument("--by", choices=["model", "tool", "day"], default="model",
                       help="group the table by (default: model)")
    usage.add_argument("--json", action="store_true", help="print the report as JSON")
    _add_settings_flags(usage)

    emulator = commands.add_parser("emulator", help="run the TTAPI emulator (for tests and demos)")
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=9000)
    emulator.add_argument("--api-key", action="append", default=[], metavar="KEY",
                          help="accept only this key (repeatable); default: any non-empty key")
    emulator.add_argument("--job-seconds", type=float, default=3.0,
                          help="how long a GPT-4o image job stays ON_QUEUE")
    emulator.add_argument("--url-ttl", type=float, default=3600.0,
                          help="seconds before result URLs expire")
    emulator.add_argument("--balance", type=float, default=100_000.0, metavar="QUOTA",
                          help="starting account balance in quota (1 USD = 100); each charged "
                          "call lowers it, and 402 answers what it cannot cover")
    return parser


def _parse_set(items: Sequence[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"Configuration error: --set expects KEY=VALUE, got {item!r}.")
        try:
            values[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            values[key.strip()] = raw
    return values


def settings_from_args(
    args: argparse.Namespace, origins: dict[str, str] | None = None
) -> Settings:
    overrides = _parse_set(args.set)
    for key in ("base_url", "output_dir", "database_path", "preview", "log_level"):
        overrides[key] = getattr(args, key)
    if getattr(args, "host", None) is not None:
        overrides["http_host"] = args.host
    if getattr(args, "port", None) is not None and args.command != "gallery":
        overrides["http_port"] = args.port
    return load_settings(args.config, overrides=overrides, origins=origins)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "emulator":
        from ttapi_mcp.emulator import EmulatorOptions, run_emulator

        options = EmulatorOptions(
            api_keys=args.api_key, job_seconds=args.job_seconds, url_ttl_seconds=args.url_ttl,
            starting_balance=args.balance)
        run_emulator(args.host, args.port, options)
        return 0
    if args.command in ("install", "uninstall"):
        from ttapi_mcp.install.command import run

        return run(args)
    if args.command == "doctor":
        from ttapi_mcp.doctor import run_doctor

        return run_doctor(lambda origins: settings_from_args(args, origins),
                          fix=args.fix, as_json=args.json)
    try:
        settings = settings_from_args(args)
        settings.prepare_dirs()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.command == "usage":
        from ttapi_mcp.usage_cli import run_usage

        return run_usage(settings, args.since, args.by, args.json)
    if args.command == "serve":
        from ttapi_mcp.server.app import run_server

        return run_server(settings, args.transport) or 0
    if args.command == "gallery":
        from ttapi_mcp.gallery_cli import gallery_link, run_gallery

        if args.link:
            print(gallery_link(settings))
            return 0
        return run_gallery(settings, args.port, not args.no_browser)
    from ttapi_mcp.demo import run_demo

    return run_demo(settings, args.prompt)
