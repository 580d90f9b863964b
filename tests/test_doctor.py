"""`ttapi-mcp doctor`: each check against real folders, a real store and the emulator."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from ttapi_mcp.config import load_settings
from ttapi_mcp.doctor import Check, run_checks
from ttapi_mcp.emulator import Emulator
from ttapi_mcp.filenames import temp_filename
from ttapi_mcp.store import ImageStore

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-doctor-4f1e2d3c4b5a"


def _env(base_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTAPI_")}
    env.update({"PYTHONPATH": str(ROOT), "TTAPI_BASE_URL": base_url, "TTAPI_API_KEY": KEY,
                "TTAPI_OUTPUT_DIR": str(tmp_path / "out"),
                "TTAPI_DATABASE_PATH": str(tmp_path / "db" / "store.sqlite3")})
    env.update(extra)
    return env


def _doctor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ttapi_mcp", "doctor", *args], env=env,
                          capture_output=True, text=True, timeout=60, cwd="/")


async def _checks(env: dict[str, str], fix: bool = False) -> dict[str, Check]:
    checks = await run_checks(lambda origins: load_settings(env=env, origins=origins), fix)
    return {c.name: c for c in checks}


def _png(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buf, "PNG")
    return buf.getvalue()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_all_ok_exits_0_shows_origins_and_the_key_masked(
    emulator: Emulator, tmp_path: Path
) -> None:
    result = _doctor(_env(str(emulator.base_url), tmp_path), "--fix")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if "free space" not in line]
    names = [line.split()[1] for line in lines]
    assert names == ["installation", "configuration", "api", "base", "balance", "output", "store",
                     "temporary", "files", "rows"], result.stdout
    assert all(line.startswith("OK ") for line in lines), result.stdout
    assert KEY not in result.stdout + result.stderr
    assert f"****{KEY[-4:]} (environment variable TTAPI_API_KEY)" in result.stdout
    assert "(environment variable TTAPI_BASE_URL) answered HTTP" in result.stdout
    # The probe is a plain GET without the key; only the balance check uses it (a GET).
    assert "quota ($1000.00)" in result.stdout
    assert [(r.route, r.method) for r in emulator.api_requests()] == [("M1", "GET")]


def test_failures_exit_1_and_say_what_to_do(tmp_path: Path) -> None:
    env = _env(f"http://127.0.0.1:{_closed_port()}", tmp_path)
    del env["TTAPI_API_KEY"]
    result = _doctor(env, "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert report["ok"] is False
    assert checks["api key"]["status"] == "FAIL" and "TTAPI_API_KEY" in checks["api key"]["advice"]
    assert checks["base url"]["status"] == "FAIL"
    assert "not reachable" in checks["base url"]["detail"]
    assert checks["output folder"]["status"] == "WARN"  # not created without --fix
    assert not (tmp_path / "out").exists() and not (tmp_path / "db").exists()


def test_a_bad_configuration_is_one_failed_check(tmp_path: Path) -> None:
    result = _doctor(_env("http://127.0.0.1:9", tmp_path, TTAPI_PREVIEW="huge"))
    assert result.returncode == 1
    first, failed = result.stdout.splitlines()
    assert first.startswith("OK    installation") and "ttapi-mcp" in first
    assert failed.startswith("FAIL  configuration") and "TTAPI_PREVIEW" in failed


@pytest.mark.anyio
async def test_unwritable_output_folder_fails(emulator: Emulator, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o500)
    try:
        checks = await _checks(_env(str(emulator.base_url), tmp_path))
    finally:
        out.chmod(0o700)
    assert checks["output folder"].status == "FAIL"
    assert "TTAPI_OUTPUT_DIR" in checks["output folder"].advice


@pytest.mark.anyio
async def test_fix_records_orphans_drops_dead_rows_and_sweeps_only_stale_temp_files(
    emulator: Emulator, tmp_path: Path
) -> None:
    env = _env(str(emulator.base_url), tmp_path)
    out, db = tmp_path / "out", tmp_path / "db" / "store.sqlite3"
    async with ImageStore(out, db) as store:
        kept = await store.save_image(_png((10, 20, 30)), model="m", prompt="kept",
                                      parameters={})
        lost = await store.save_image(_png((40, 50, 60)), model="m", prompt="lost",
                                      parameters={})
    lost.path.unlink()  # a row without a file
    orphan = out / "20260101-000000_paid-for_abcdefabcdef.png"
    orphan.write_bytes(_png((70, 80, 90)))  # a file without a row (crash before INSERT)
    notes = out / "notes.txt"
    notes.write_text("the user's own file")
    stale = out / temp_filename("old")  # our pid, but an hour old
    stale.write_bytes(b"half")
    hour_ago = time.time() - 3600
    os.utime(stale, (hour_ago, hour_ago))
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        in_flight = out / f".busy.{sleeper.pid}.tmp"  # a live server's file in progress
        in_flight.write_bytes(b"busy")

        before = await _checks(env)
        assert before["temporary files"].status == "WARN"
        assert "2 in the output folder" in before["temporary files"].detail
        assert before["files w/o rows"].status == "WARN"
        assert before["rows w/o files"].status == "WARN" and lost.id in before[
            "rows w/o files"].detail
        assert stale.exists() and orphan.exists()  # checking changes nothing

        fixed = await _checks(env, fix=True)
        assert not stale.exists() and in_flight.exists()
        assert "kept 1" in fixed["temporary files"].detail
        assert fixed["files w/o rows"].status == "WARN" and "notes.txt" in fixed[
            "files w/o rows"].detail
        assert orphan.exists() and notes.exists() and kept.path.exists()
    finally:
        sleeper.kill()
        sleeper.wait(10)

    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = dict(conn.execute("SELECT id, path FROM images").fetchall())
        sha = conn.execute("SELECT sha256 FROM images WHERE path = ?",
                           (str(orphan),)).fetchone()[0]
    assert rows == {kept.id: str(kept.path), "abcdefabcdef": str(orphan)}
    assert sha == hashlib.sha256(orphan.read_bytes()).hexdigest()

    in_flight.unlink()
    notes.unlink()
    again = await _checks(env, fix=True)  # a second repair finds nothing to do
    for name in ("store", "temporary files", "files w/o rows", "rows w/o files"):
        assert again[name].status == "OK", again[name]
    assert "2 images" in again["store"].detail


@pytest.mark.anyio
async def test_a_database_kept_in_the_output_folder_is_not_an_orphan(
    emulator: Emulator, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    env = _env(str(emulator.base_url), tmp_path, TTAPI_DATABASE_PATH=str(out / "store.sqlite3"))
    async with ImageStore(out, out / "store.sqlite3") as store:
        await store.save_image(_png((1, 2, 3)), model="m", prompt="p", parameters={})
        await store.save_partial("local-x", 0, 0, _png((4, 5, 6)))  # out/partials/: a preview
        orphan = out / "left-behind.png"
        orphan.write_bytes(_png((7, 8, 9)))
        checks = await _checks(env)  # while the store is open: its -wal and -shm exist
    assert checks["store"].detail.endswith("1 images recorded"), checks["store"]
    assert checks["files w/o rows"].status == "WARN"
    assert "1 files" in checks["files w/o rows"].detail, checks["files w/o rows"]
    assert "left-behind.png" in checks["files w/o rows"].detail
    assert "store.sqlite3" not in checks["files w/o rows"].detail


@pytest.mark.anyio
async def test_doctor_checks_and_repairs_a_postgresql_store(
    emulator: Emulator, tmp_path: Path, pg_cluster: object
) -> None:
    url = pg_cluster.new_schema_url()  # type: ignore[attr-defined]
    env = _env(emulator.base_url, tmp_path, TTAPI_DATABASE_URL=url)
    settings = load_settings(env=env)
    async with ImageStore(settings.output_dir, settings.store_path, database_url=url) as store:
        kept = await store.save_image(_png((9, 9, 9)), model="m", prompt="kept", parameters={})
        gone = await store.save_image(_png((8, 8, 8)), model="m", prompt="gone", parameters={})
    gone.path.unlink()
    orphan = settings.output_dir / "orphan_abcdefabcdef.png"
    orphan.write_bytes(_png((7, 7, 7)))
    before = await _checks(env)
    assert before["store"].status == "OK" and "postgresql://postgres@127.0.0.1" in \
        before["store"].detail and "2 images recorded" in before["store"].detail
    assert before["rows w/o files"].status != "OK" and before["files w/o rows"].status != "OK"
    await _checks(env, fix=True)
    after = await _checks(env)
    assert after["rows w/o files"].status == "OK" and after["files w/o rows"].status == "OK"
    async with ImageStore(settings.output_dir, settings.store_path, database_url=url) as store:
        ids = {s.id for s in (await store.list_images())[0]}
    assert kept.id in ids and gone.id not in ids and len(ids) == 2  # the orphan adopted


def test_doctor_names_an_unreachable_postgresql_without_its_password(
    emulator: Emulator, tmp_path: Path
) -> None:
    url = f"postgresql://ttapi:pw-canary-5521@127.0.0.1:{_closed_port()}/ttapi"
    result = _doctor(_env(emulator.base_url, tmp_path, TTAPI_DATABASE_URL=url))
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "cannot open the PostgreSQL database postgresql://ttapi:***@127.0.0.1" in out
    assert "pw-canary-5521" not in out
