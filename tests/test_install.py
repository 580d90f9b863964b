"""`ttapi-mcp install` / `uninstall`: real files under a temporary home, per client and platform.

The expected locations are written out here from each client's documentation, not taken
from the code under test. Every edit must keep the rest of the file (other servers,
settings, VS Code comments) and be undone exactly by `uninstall`.
"""

from __future__ import annotations

import io
import json
import os
import pty
import secrets
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ttapi_mcp.install import InstallError, Request, install, obtain_key, uninstall
from ttapi_mcp.install.jsonedit import parse

REPO = Path(__file__).resolve().parents[1]
KEY = f"sk-install-{secrets.token_hex(10)}"

# client -> platform -> path relative to the home folder (Windows: under %APPDATA%).
LAYOUTS: dict[str, dict[str, str]] = {
    "claude-desktop": {
        "darwin": "Library/Application Support/Claude/claude_desktop_config.json",
        "win32": "AppData/Roaming/Claude/claude_desktop_config.json",
        "linux": ".config/Claude/claude_desktop_config.json",
    },
    "claude-code": {p: ".claude.json" for p in ("darwin", "win32", "linux")},
    "cursor": {p: ".cursor/mcp.json" for p in ("darwin", "win32", "linux")},
    "windsurf": {p: ".codeium/windsurf/mcp_config.json" for p in ("darwin", "win32", "linux")},
    "vscode": {
        "darwin": "Library/Application Support/Code/User/mcp.json",
        "win32": "AppData/Roaming/Code/User/mcp.json",
        "linux": ".config/Code/User/mcp.json",
    },
}
SERVERS_KEY = {"vscode": "servers"}

VSCODE_FILE = """{
  // Servers I use every day
  "servers": {
    "github": {
      "type": "http",
      "url": "https://api.githubcopilot.com/mcp/", // remote
    },
  },
  /* prompted values */
  "inputs": [{"id": "gh", "type": "promptString", "password": true}],
}
"""
JSON_FILE = """{
  "mcpServers": {
    "filesystem": {
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-filesystem", "/Users/me/Desktop"]
    }
  },
  "globalShortcut": "Ctrl+Space"
}
"""


def _request(client: str, platform: str, home: Path, **kw: Any) -> Request:
    env = {"APPDATA": str(home / "AppData" / "Roaming")} if platform == "win32" else {}
    return Request(client=client, platform=platform, home=home, env=env, **kw)  # type: ignore[arg-type]


def _servers(path: Path, client: str) -> dict[str, Any]:
    root = parse(path.read_text(encoding="utf-8"), comments=client == "vscode").value
    return root[SERVERS_KEY.get(client, "mcpServers")]


@pytest.mark.parametrize("platform", ["darwin", "win32", "linux"])
@pytest.mark.parametrize("client", sorted(LAYOUTS))
def test_install_creates_the_documented_file_and_uninstall_empties_it(
    client: str, platform: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    out = io.StringIO()
    request = _request(client, platform, home, output_dir=tmp_path / "pictures")
    assert install(request, KEY, "the prompt", out) == 0
    path = home / LAYOUTS[client][platform]
    assert path.is_file(), sorted(str(p) for p in home.rglob("*"))
    assert oct(path.stat().st_mode & 0o777) == "0o600", "a new file holding a key is private"
    entry = _servers(path, client)["ttapi"]
    assert entry["args"][-1] == "serve" and Path(entry["command"]).is_absolute()
    assert entry["env"] == {"TTAPI_API_KEY": KEY,
                            "TTAPI_OUTPUT_DIR": str(tmp_path / "pictures")}
    if client in ("vscode", "claude-code"):
        assert entry["type"] == "stdio"
    assert str(path) in out.getvalue() and KEY not in out.getvalue()

    assert uninstall(_request(client, platform, home), io.StringIO()) == 0
    assert _servers(path, client) == {}
    assert len(list(path.parent.glob(path.name + ".*.bak"))) == 1


@pytest.mark.parametrize("client", sorted(LAYOUTS))
def test_existing_files_keep_everything_else_and_round_trip(client: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = home / LAYOUTS[client]["linux"]
    path.parent.mkdir(parents=True)
    original = VSCODE_FILE if client == "vscode" else JSON_FILE
    path.write_text(original, encoding="utf-8")
    path.chmod(0o640)

    assert install(_request(client, "linux", home), KEY, "env", io.StringIO()) == 0
    text = path.read_text(encoding="utf-8")
    servers = _servers(path, client)
    assert set(servers) == ({"github", "ttapi"} if client == "vscode" else {"filesystem", "ttapi"})
    if client == "vscode":
        assert "// Servers I use every day" in text and "/* prompted values */" in text
        assert parse(text, comments=True).value["inputs"][0]["id"] == "gh"
    else:
        assert json.loads(text)["globalShortcut"] == "Ctrl+Space"
    assert oct(path.stat().st_mode & 0o777) == "0o640", "the file's mode is kept"
    backups = list(path.parent.glob(path.name + ".*.bak"))
    assert [b.read_text(encoding="utf-8") for b in backups] == [original]

    assert uninstall(_request(client, "linux", home), io.StringIO()) == 0
    assert path.read_text(encoding="utf-8") == original


def test_update_keeps_added_settings_and_the_key_when_none_is_given(tmp_path: Path) -> None:
    home = tmp_path / "home"
    request = _request("claude-desktop", "darwin", home)
    install(request, KEY, "env", io.StringIO())
    path = home / LAYOUTS["claude-desktop"]["darwin"]
    data = json.loads(path.read_text())
    data["mcpServers"]["ttapi"]["env"]["TTAPI_BASE_URL"] = "https://api.ttapi.org"
    path.write_text(json.dumps(data), encoding="utf-8")

    out = io.StringIO()
    assert install(_request("claude-desktop", "darwin", home, use_uvx=True), None, "not set",
                   out) == 0
    entry = json.loads(path.read_text())["mcpServers"]["ttapi"]
    assert entry["command"] == "uvx" and entry["args"] == ["ttapi-mcp", "serve"]
    assert entry["env"]["TTAPI_API_KEY"] == KEY
    assert entry["env"]["TTAPI_BASE_URL"] == "https://api.ttapi.org"
    assert "Updated server 'ttapi'" in out.getvalue() and "kept from the existing entry" in \
        out.getvalue()
    assert KEY not in out.getvalue()


@pytest.mark.parametrize(("client", "content"), [
    ("claude-desktop", '{"mcpServers": {"a": {"command": "x"},}}'),
    ("claude-desktop", '// a comment\n{"mcpServers": {}}'),
    ("cursor", '{"mcpServers": ['),
    ("cursor", '["not", "an", "object"]'),
    ("windsurf", '{"mcpServers": "nope"}'),
    ("vscode", '{"servers": {"a": }'),
    ("claude-code", "\xff\xfe binary"),
])
def test_a_malformed_file_is_refused_untouched(client: str, content: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = home / LAYOUTS[client]["linux"]
    path.parent.mkdir(parents=True)
    path.write_bytes(content.encode("latin-1"))
    before = path.stat()
    for action in (lambda: install(_request(client, "linux", home), KEY, "env", io.StringIO()),
                   lambda: uninstall(_request(client, "linux", home), io.StringIO())):
        with pytest.raises(InstallError) as info:
            action()
        assert str(path) in str(info.value) and "nothing was changed" in str(info.value)
        assert KEY not in str(info.value)
    assert path.read_bytes() == content.encode("latin-1")
    assert path.stat().st_mtime_ns == before.st_mtime_ns
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name], "no backup, no temp"


def test_a_symlinked_file_stays_a_link(tmp_path: Path) -> None:
    home = tmp_path / "home"
    real = tmp_path / "dotfiles" / "mcp.json"
    real.parent.mkdir()
    real.write_text(JSON_FILE, encoding="utf-8")
    link = home / ".cursor" / "mcp.json"
    link.parent.mkdir(parents=True)
    link.symlink_to(real)
    install(_request("cursor", "linux", home), KEY, "env", io.StringIO())
    assert link.is_symlink() and "ttapi" in json.loads(real.read_text())["mcpServers"]


def test_dry_run_shows_the_change_masked_and_writes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = home / LAYOUTS["vscode"]["linux"]
    path.parent.mkdir(parents=True)
    path.write_text(VSCODE_FILE, encoding="utf-8")
    out = io.StringIO()
    assert install(_request("vscode", "linux", home, dry_run=True), KEY, "env", out) == 0
    shown = out.getvalue()
    assert "Dry run" in shown and '+    "type": "stdio"' in shown and f"****{KEY[-4:]}" in shown
    assert KEY not in shown
    assert path.read_text(encoding="utf-8") == VSCODE_FILE
    assert sorted(p.name for p in path.parent.iterdir()) == ["mcp.json"]


def test_key_from_environment_is_trimmed_and_checked() -> None:
    assert obtain_key({"TTAPI_API_KEY": f"  {KEY}\r\n"}, interactive=False) == (
        KEY, "environment variable TTAPI_API_KEY")
    assert obtain_key({}, interactive=False) == (None, "not set")
    assert obtain_key({}, interactive=True, prompt=lambda _: f" {KEY}\n")[0] == KEY
    for bad in (f"{KEY}\r\nX-Other: 1", f"{KEY}\u00e9", "your-key"):
        with pytest.raises(InstallError) as info:
            obtain_key({"TTAPI_API_KEY": bad}, interactive=False)
        assert info.value.exit_code == 2 and "TTAPI_API_KEY" in str(info.value)
        assert KEY not in str(info.value)


def _cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTAPI_")}
    env.update({"HOME": str(home), "PYTHONPATH": str(REPO), "XDG_CONFIG_HOME": "",
                "XDG_DATA_HOME": str(home / ".local" / "share")}, **extra)
    return env


def test_cli_install_uvx_and_uninstall(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = _cli_env(home, TTAPI_API_KEY=KEY)
    run = [sys.executable, "-m", "ttapi_mcp"]
    done = subprocess.run([*run, "install", "windsurf", "--uvx-from", "dist/x.whl"], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert KEY not in done.stdout + done.stderr
    path = home / LAYOUTS["windsurf"]["linux"]
    entry = json.loads(path.read_text())["mcpServers"]["ttapi"]
    assert entry["command"] == "uvx"
    assert entry["args"] == ["--from", "dist/x.whl", "ttapi-mcp", "serve"]
    assert entry["env"]["TTAPI_OUTPUT_DIR"] == str(home / ".local/share/ttapi-mcp/images")

    bad = subprocess.run([*run, "install", "cursor"], env=_cli_env(
        home, TTAPI_API_KEY=f"{KEY}\u00a0x"), stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=60)
    assert bad.returncode == 2 and "non-ASCII" in bad.stderr and KEY not in bad.stderr
    assert not (home / ".cursor").exists()

    gone = subprocess.run([*run, "uninstall", "windsurf"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert gone.returncode == 0 and "Removed server 'ttapi'" in gone.stdout
    assert json.loads(path.read_text())["mcpServers"] == {}
    again = subprocess.run([*run, "uninstall", "windsurf"], env=env, capture_output=True,
                           text=True, timeout=60)
    assert again.returncode == 0 and "nothing to remove" in again.stdout


def test_cli_hidden_prompt_never_echoes_the_key(tmp_path: Path) -> None:
    """A real terminal (a pty): what is typed at the prompt must not come back on screen."""
    home = tmp_path / "home"
    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI, with the pty as its controlling terminal
        os.execve(sys.executable, [sys.executable, "-m", "ttapi_mcp", "install", "cursor"],
                  _cli_env(home))
    screen = b""
    deadline = time.monotonic() + 60
    typed = False
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                screen += chunk
            if not typed and b"typing is hidden" in screen:
                os.write(fd, f"  {KEY}\r".encode())
                typed = True
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    assert typed, screen
    assert os.waitstatus_to_exitcode(status) == 0, screen
    assert KEY.encode() not in screen
    assert f"****{KEY[-4:]} (the prompt)".encode() in screen
    entry = json.loads((home / ".cursor" / "mcp.json").read_text())["mcpServers"]["ttapi"]
    assert entry["env"]["TTAPI_API_KEY"] == KEY


def test_a_copy_in_uvs_cache_is_flagged() -> None:
    from ttapi_mcp.install.entry import ephemeral_note

    cached = "/home/me/.cache/uv/archive-v0/AbC123"
    assert ephemeral_note(cached) is not None and "--uvx" in str(ephemeral_note(cached))
    assert ephemeral_note("/home/me/project/.venv") is None


def test_a_key_written_into_a_repository_file_is_flagged(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    out = io.StringIO()
    request = Request(client="vscode", file=project / ".vscode" / "mcp.json", env={})
    assert install(request, KEY, "env", out) == 0
    assert "inside the git repository" in out.getvalue() and KEY not in out.getvalue()
    assert "ttapi" in _servers(project / ".vscode" / "mcp.json", "vscode")
