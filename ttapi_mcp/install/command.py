"""`ttapi-mcp install CLIENT` and `uninstall CLIENT`: one server entry, added or removed.

Only the server's own entry changes; every other server, setting and comment of the file
stays. A file that does not parse is refused untouched. The key comes from the
TTAPI_API_KEY environment variable or a hidden prompt, never from the command line, and is
never printed: `--dry-run` shows the change with the key masked.
"""

from __future__ import annotations

import difflib
import getpass
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

from ttapi_mcp.config import default_output_dir, mask_secret
from ttapi_mcp.keycheck import header_problem

from . import entry as entries
from . import mcpservers, vscode
from .clients import CLIENTS, Platform, config_path
from .files import InstallError, read_text, replace_text
from .jsonedit import JSONEditError, parse, remove_member, set_member

KEY_VAR = "TTAPI_API_KEY"
SECRET_SUFFIXES = ("KEY", "TOKEN", "SECRET", "PASSWORD")


@dataclass
class Request:
    """What the user asked for; paths and environment are explicit so tests can vary them."""

    client: str
    name: str = "ttapi"
    file: Path | None = None
    platform: Platform | None = None
    home: Path | None = None
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    use_uvx: bool = False
    uvx_from: str | None = None
    output_dir: Path | None = None
    base_url: str | None = None
    dry_run: bool = False

    def path(self) -> Path:
        if self.file is not None:
            return self.file.expanduser().absolute()
        return config_path(self.client, self.platform, self.home, self.env)


def _format(client: str) -> ModuleType:
    if client not in CLIENTS:
        raise InstallError(f"unknown client {client!r}; choose one of: "
                           f"{', '.join(sorted(CLIENTS))}.", exit_code=2)
    return vscode if CLIENTS[client].shape == "vscode" else mcpservers


def obtain_key(env: Mapping[str, str], interactive: bool,
               prompt: Callable[[str], str] = getpass.getpass) -> tuple[str | None, str]:
    """The key and where it came from: the environment, else a hidden prompt, else none."""
    raw = env.get(KEY_VAR, "").strip()
    source = f"environment variable {KEY_VAR}"
    if not raw and interactive:
        raw = prompt("TTAPI key (typing is hidden; Enter to skip and add it later): ").strip()
        source = "the prompt"
    if not raw:
        return None, "not set"
    problem = header_problem(raw)
    if problem:
        raise InstallError(f"The key from {source} {problem}. Nothing was changed.",
                           exit_code=2)
    return raw, source


def _load(path: Path, fmt: ModuleType) -> tuple[str | None, dict[str, Any]]:
    """The file's text (None if absent) and its servers object, or a refusal."""
    text = read_text(path)
    if text is None or not text.strip():
        return text, {}
    try:
        root = parse(text, comments=fmt.COMMENTS)
    except JSONEditError as exc:
        kind = "JSON with comments" if fmt.COMMENTS else "valid JSON"
        raise InstallError(f"{path} is not {kind} ({exc}); nothing was changed. Fix the "
                           "file (or move it away), then run the command again.") from None
    if not isinstance(root.value, dict):
        raise InstallError(f"{path} does not hold a JSON object; nothing was changed.")
    servers = root.value.get(fmt.SERVERS_KEY, {})
    if not isinstance(servers, dict):
        raise InstallError(f'"{fmt.SERVERS_KEY}" in {path} is not an object; nothing was '
                           "changed. Fix the file, then run the command again.")
    return text, servers


def _masked(body: Any) -> Any:
    if not isinstance(body, dict):
        return body
    shown = dict(body)
    env = shown.get("env")
    if isinstance(env, dict):
        shown["env"] = {k: mask_secret(str(v)) if k.upper().endswith(SECRET_SUFFIXES) else v
                        for k, v in env.items()}
    return shown


def _diff(name: str, old: Any, new: Any, path: Path) -> str:
    def lines(body: Any) -> list[str]:
        if body is None:
            return []
        return json.dumps({name: _masked(body)}, indent=2).splitlines(keepends=True)
    shown = "".join(difflib.unified_diff(lines(old), lines(new), f"{path} (now)",
                                         f"{path} (after)"))
    return shown if shown.endswith("\n") or not shown else shown + "\n"


def _committed_note(path: Path) -> str | None:
    """A key written into a repository's file is one `git add` away from being published."""
    for folder in path.parents:
        if (folder / ".git").exists():
            return (f"{path} is inside the git repository {folder} and now holds your key: "
                    "keep it out of commits (add it to .gitignore)")
    return None


def install(request: Request, key: str | None, key_source: str, out: TextIO) -> int:
    """Add or update the entry; returns the exit code."""
    fmt = _format(request.client)
    client = CLIENTS[request.client]
    path = request.path()
    text, servers = _load(path, fmt)
    old = servers.get(request.name)
    old_env = old.get("env") if isinstance(old, dict) else None
    env: dict[str, str] = dict(old_env) if isinstance(old_env, dict) else {}
    if key:
        env[KEY_VAR] = key
    output_dir = request.output_dir or (Path(env["TTAPI_OUTPUT_DIR"]) if env.get(
        "TTAPI_OUTPUT_DIR") else default_output_dir())
    env["TTAPI_OUTPUT_DIR"] = str(output_dir.expanduser().absolute())
    if request.base_url:
        env["TTAPI_BASE_URL"] = request.base_url.strip()
    if request.use_uvx:
        command, args = entries.uvx(request.uvx_from)
    else:
        command, args = entries.this_installation()
    new = fmt.entry(command, args, env, typed=request.client == "claude-code")
    new_text = set_member(text or "", [fmt.SERVERS_KEY, request.name], new,
                          comments=fmt.COMMENTS)
    verb = "update" if old is not None else "add"
    if request.dry_run:
        out.write(f"Dry run: would {verb} server {request.name!r} in {client.title}'s "
                  f"configuration {path}{'' if text is not None else ' (a new file)'}:\n")
        out.write(_diff(request.name, old, new, path) or "(no change)\n")
        out.write("Nothing was written.\n")
        return 0
    backup = replace_text(path, new_text)
    done = "Updated" if old is not None else "Added"
    out.write(f"{done} server {request.name!r} in {client.title}'s configuration:\n"
              f"  file:    {path}\n")
    if backup:
        out.write(f"  backup:  {backup}\n")
    out.write(f"  command: {entries.as_shell(command, args)}\n")
    shown = mask_secret(env.get(KEY_VAR))
    where = key_source if key else ("kept from the existing entry" if env.get(KEY_VAR)
                                    else "set it later (the server's first answer says how)")
    out.write(f"  key:     {shown} ({where})\n  images:  {env['TTAPI_OUTPUT_DIR']}\n")
    if request.client == "claude-code":
        out.write("  (user scope. With a Claude Code session running, the same can be done "
                  f"with: claude mcp add --scope user {request.name} -e "
                  f"{KEY_VAR}=\"${KEY_VAR}\" -- {entries.as_shell(command, args)})\n")
    notes = [None if request.use_uvx else entries.ephemeral_note(),
             _committed_note(path) if env.get(KEY_VAR) else None]
    for note in filter(None, notes):
        out.write(f"Note: {note}.\n")
    out.write(f"Next: {client.restart}.\n")
    return 0


def uninstall(request: Request, out: TextIO) -> int:
    """Remove the entry (and nothing else); returns the exit code."""
    fmt = _format(request.client)
    client = CLIENTS[request.client]
    path = request.path()
    text, servers = _load(path, fmt)
    if text is None or request.name not in servers:
        out.write(f"No server {request.name!r} in {client.title}'s configuration {path}; "
                  "nothing to remove.\n")
        return 0
    new_text = remove_member(text, [fmt.SERVERS_KEY, request.name], comments=fmt.COMMENTS)
    if request.dry_run:
        out.write(f"Dry run: would remove server {request.name!r} from {path}:\n")
        out.write(_diff(request.name, servers[request.name], None, path))
        out.write("Nothing was written.\n")
        return 0
    backup = replace_text(path, new_text)
    out.write(f"Removed server {request.name!r} from {client.title}'s configuration {path}"
              f"\n  backup: {backup}\nNext: {client.restart}.\n")
    return 0


def run(args: Any, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """The CLI's `install` and `uninstall` commands (arguments from argparse)."""
    out, err = out or sys.stdout, err or sys.stderr
    request = Request(
        client=args.client, name=args.name, file=Path(args.file) if args.file else None,
        use_uvx=getattr(args, "uvx", False) or bool(getattr(args, "uvx_from", None)),
        uvx_from=getattr(args, "uvx_from", None),
        output_dir=Path(args.output_dir) if getattr(args, "output_dir", None) else None,
        base_url=getattr(args, "base_url", None), dry_run=args.dry_run)
    try:
        if args.command == "uninstall":
            return uninstall(request, out)
        _format(request.client)
        # A dry run never prompts: it only shows what the real run would write.
        key, source = obtain_key(request.env, sys.stdin.isatty() and not args.dry_run)
        return install(request, key, source, out)
    except InstallError as exc:
        err.write(f"{exc}\n")
        return exc.exit_code
