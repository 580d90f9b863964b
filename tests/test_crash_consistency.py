"""Crash consistency: SIGKILL a real server process while it saves ten large images.

Whatever the moment of the kill, no partial file may look like an image, every recorded
image must match its file, and after `ttapi-mcp doctor --fix` and a restart the folder
and the database agree, with no temporary file left and the next call working.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from PIL import Image

from ttapi_mcp.config import load_settings
from ttapi_mcp.doctor import run_checks
from ttapi_mcp.emulator import Emulator
from ttapi_mcp.store import ImageStore

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX-only"),
]

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-crash-test-0123456789"
N = 10
# Starts the server exactly as `python -m ttapi_mcp serve`, after writing its process id.
LAUNCH = (
    "import os, sys; open(sys.argv[1], 'w').write(str(os.getpid()));"
    "from ttapi_mcp.cli import main; raise SystemExit(main(['serve']))"
)


@dataclass(frozen=True)
class KillPoint:
    name: str
    reached: Callable[[int, int], bool]  # (visible files, hidden files) -> kill now?
    url_form: bool = False  # results as URLs the server downloads, instead of base64
    large: bool = False  # multi-megabyte PNGs: wider windows, slower responses
    restart_first: bool = False  # recover by restarting the server before doctor --fix


KILL_POINTS = [
    KillPoint("first temporary file", lambda visible, hidden: hidden > 0, large=True),
    KillPoint("first image in place", lambda visible, hidden: visible >= 1, restart_first=True),
    KillPoint("half of the batch", lambda visible, hidden: visible >= N // 2),
    KillPoint("while downloading result URLs", lambda visible, hidden: hidden > 0,
              url_form=True, large=True, restart_first=True),
]


def _env(emulator: Emulator, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTAPI_")}
    env.update({
        "PYTHONPATH": str(ROOT), "TTAPI_BASE_URL": str(emulator.base_url),
        "TTAPI_API_KEY": KEY, "TTAPI_OUTPUT_DIR": str(tmp_path / "out"),
        "TTAPI_DATABASE_PATH": str(tmp_path / "db" / "store.sqlite3"),
        "TTAPI_RETRY_BASE_DELAY": "0.01", "TTAPI_LOG_LEVEL": "DEBUG",
    })
    return env


def _counts(folder: Path) -> tuple[int, int]:
    if not folder.is_dir():
        return 0, 0
    names = [e.name for e in os.scandir(folder) if e.is_file(follow_symlinks=False)]
    hidden = sum(n.startswith(".") for n in names)
    return len(names) - hidden, hidden


def _rows(db: Path) -> dict[str, str]:
    """path -> sha256, read straight from SQLite (the WAL is replayed on open)."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return dict(conn.execute("SELECT path, sha256 FROM images").fetchall())


def _assert_visible_files_are_whole_images(folder: Path) -> list[Path]:
    visible = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    for path in visible:
        with Image.open(path) as im:
            im.load()  # raises on a truncated file
            assert im.format == "PNG" and im.size in ((1536, 1024), (256, 256)), path
    return visible


async def _generate_until_killed(
    emulator: Emulator, tmp_path: Path, env: dict[str, str], point: KillPoint
) -> dict[str, Any]:
    """Start the server over stdio, ask for ten images, SIGKILL it at ``point``."""
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    pid_file, out = tmp_path / "server.pid", tmp_path / "out"
    params = StdioServerParameters(command=sys.executable, args=["-c", LAUNCH, str(pid_file)],
                                   env=env, cwd="/")
    outcome: dict[str, Any] = {}

    async def call(client: Client) -> None:
        try:
            outcome["result"] = await client.call_tool("generate_image", {
                "prompt": "a harbour crane at night", "model": "gpt-image-1", "n": N,
                "size": "1536x1024", "output_format": "png", "preview": "none"})
        except Exception as exc:  # the connection dies with the process
            outcome["error"] = exc

    with open(tmp_path / "stderr.log", "w") as errlog, anyio.fail_after(30):
        async with Client(stdio_client(params, errlog=errlog)) as client:
            pid = int(pid_file.read_text())
            async with anyio.create_task_group() as tg:
                tg.start_soon(call, client)
                for _ in range(20_000):  # bounded: fail_after stops it first
                    if point.reached(*_counts(out)) or outcome:
                        break
                    await anyio.sleep(0.001)
                outcome["finished_before_kill"] = "result" in outcome
                outcome["counts_at_kill"] = _counts(out)
                os.kill(pid, signal.SIGKILL)
    return outcome


async def _restart_and_generate(env: dict[str, str], log: Path) -> Any:
    """A fresh server on the same folder and database; its start sweeps dead temp files."""
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(command=sys.executable, args=["-m", "ttapi_mcp", "serve"],
                                   env=env, cwd="/")
    with open(log, "w") as errlog, anyio.fail_after(30):
        async with Client(stdio_client(params, errlog=errlog)) as client:
            return await client.call_tool("generate_image", {
                "prompt": "after the crash", "model": "dall-e-2", "size": "256x256"})


def _hidden_files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(".") and p.is_file()]


async def _doctor_statuses(env: dict[str, str], fix: bool) -> dict[str, str]:
    """The doctor's checks, run in-process on the same environment the server had."""
    checks = await run_checks(lambda origins: load_settings(env=env, origins=origins), fix)
    return {c.name: c.status for c in checks}


@pytest.mark.parametrize("point", KILL_POINTS, ids=[p.name for p in KILL_POINTS])
async def test_sigkill_while_saving_loses_nothing_and_recovery_repairs(
    emulator: Emulator, tmp_path: Path, point: KillPoint
) -> None:
    emulator.options.photo_sized = point.large
    emulator.options.gpt_url_form = point.url_form
    env = _env(emulator, tmp_path)
    out, db = tmp_path / "out", tmp_path / "db" / "store.sqlite3"

    outcome = await _generate_until_killed(emulator, tmp_path, env, point)
    assert not outcome["finished_before_kill"], "the kill came after the call had finished"

    # Right after the kill: nothing visible is partial; every row matches its file.
    visible = _assert_visible_files_are_whole_images(out)
    assert len(visible) < N
    for path, sha in _rows(db).items():
        assert Path(path).is_file(), f"a row points at nothing: {path}"
        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == sha

    emulator.options.photo_sized = False
    if point.restart_first:
        again = await _restart_and_generate(env, tmp_path / "restart.log")
        assert not again.is_error, again.content
        assert _hidden_files(out) == [], "the restarted server left temporary files"
        visible = _assert_visible_files_are_whole_images(out)

    # doctor --fix: temporary files go, files without rows are recorded, nothing deleted.
    fixed = await _doctor_statuses(env, fix=True)
    assert fixed["store"] == "OK" and fixed["temporary files"] == "OK", fixed
    assert _hidden_files(out) == []
    assert _assert_visible_files_are_whole_images(out) == visible
    rows = _rows(db)
    assert sorted(rows) == [str(p) for p in visible]
    for path in visible:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == rows[str(path)]
    checked = await _doctor_statuses(env, fix=False)
    for name in ("store", "temporary files", "files w/o rows", "rows w/o files"):
        assert checked[name] == "OK", checked

    if not point.restart_first:
        again = await _restart_and_generate(env, tmp_path / "restart.log")
        assert not again.is_error, again.content
    async with ImageStore(out, db) as store:
        report = await store.consistency_report()
        assert report.ok, report
        assert await store.count_images() == len(visible) + (0 if point.restart_first else 1)
