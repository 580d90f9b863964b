"""`ttapi-mcp doctor`: can the server work here? And, with ``--fix``, repair what is safe.

A server started by a desktop client fails out of sight, so each check answers one
question a user would ask, on one line: OK, WARN or FAIL, what was found (with where the
value came from), and what to do. The key is only ever shown masked.

Repairs never delete an image: a file without a row may have cost money, so it is adopted
into the store. A row whose file is gone is removed (the image cannot come back from the
row; the request log keeps the history). Temporary files are removed only when the
process that wrote them is gone or they are old, so a running server keeps its own.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Literal, TextIO, TypeVar

import anyio
import httpx2

from .config import MIB, ConfigError, Settings, mask_secret
from .filenames import temp_filename
from .storage import StorageError, shared_storage
from .store import ImageStore, StoreError
from .store.models import NotAnImageError

Status = Literal["OK", "WARN", "FAIL"]
LOW_SPACE_BYTES = 500 * MIB
PROBE_TIMEOUT = 5.0
SHOWN_NAMES = 3
FIX_HINT = "run 'ttapi-mcp doctor --fix' while no server is saving images"
T = TypeVar("T")


@dataclass
class Check:
    """The outcome of one check, as a person reads it."""

    name: str
    status: Status
    detail: str
    advice: str = ""

    def line(self) -> str:
        text = f"{self.status:<4}  {self.name:<15} {self.detail}"
        return f"{text} -> {self.advice}" if self.advice else text


def _origin(origins: dict[str, str], key: str) -> str:
    return origins.get(key, "default")


def _names(paths: list[Path]) -> str:
    shown = ", ".join(p.name for p in paths[:SHOWN_NAMES])
    return shown + (f" and {len(paths) - SHOWN_NAMES} more" if len(paths) > SHOWN_NAMES else "")


# -- checks -----------------------------------------------------------------------------


def check_installation() -> Check:
    """Which ttapi-mcp runs: a client may start another one than the shell's."""
    from .about import installation

    return Check("installation", "OK", installation())


def check_config(origins: dict[str, str]) -> Check:
    """Which layers set which keys: the first thing to know when a value is not the one meant."""
    layers: dict[str, list[str]] = {}
    for key, where in origins.items():
        layer = where.split(" ")[0] if where.startswith(("environment", "command-line")) else where
        layers.setdefault(layer, []).append(key)
    shown = "; ".join(f"{layer}: {', '.join(sorted(keys))}" for layer, keys in layers.items())
    return Check("configuration", "OK", f"loaded ({shown or 'all defaults'})")


def check_key(settings: Settings, origins: dict[str, str]) -> Check:
    key = settings.api_key_value()
    if not key:
        return Check(
            "api key", "FAIL", "not set: tools cannot reach TTAPI",
            "run 'ttapi-mcp install CLIENT' (it asks for the key), or set TTAPI_API_KEY in "
            "the server's environment (the \"env\" block of your MCP client's server entry) "
            "or \"api_key\" in the JSON config file",
        )
    where = _origin(origins, "api_key")
    return Check("api key", "OK", f"{mask_secret(key)} ({where})")


def check_reachable(settings: Settings, origins: dict[str, str],
                    timeout: float = PROBE_TIMEOUT) -> Check:
    """One bounded GET of the origin, without the key: any HTTP answer means reachable."""
    url = settings.base_url.rstrip("/") + "/"
    where = _origin(origins, "base_url")
    started = time.monotonic()
    try:
        with httpx2.Client(timeout=timeout, follow_redirects=False) as http:
            status = http.get(url, headers={"User-Agent": "ttapi-mcp doctor"}).status_code
    except (httpx2.HTTPError, httpx2.InvalidURL, ValueError) as exc:
        return Check(
            "base url", "FAIL", f"{settings.base_url} ({where}) is not reachable: "
            f"{type(exc).__name__}: {exc}",
            "check the address, your network, proxy or firewall; TTAPI serves "
            "https://api.ttapi.io (and https://api.ttapi.org for slow gpt-image-1 calls)",
        )
    ms = (time.monotonic() - started) * 1000
    return Check("base url", "OK",
                 f"{settings.base_url} ({where}) answered HTTP {status} in {ms:.0f} ms")


async def check_balance(settings: Settings) -> Check:
    """The account balance in quota and dollars, WARN when low (§11.7); never the e-mail."""
    from .api import RetryPolicy, Timeouts, TTAPIClient, TTAPIError, quota_text

    key = settings.api_key_value()
    if not key:
        return Check("balance", "WARN", "not checked: no API key")
    client = TTAPIClient(settings.base_url, key, retry=RetryPolicy(max_attempts=1),
                         timeouts=Timeouts(connect=PROBE_TIMEOUT, job=PROBE_TIMEOUT))
    try:
        async with client:
            info = await client.account_info()
    except TTAPIError as exc:
        return Check("balance", "WARN", f"could not be read: {exc}",
                     "the balance endpoint is optional; image calls may still work")
    detail = (f"{quota_text(info.balance)} quota (${info.balance_usd:.2f}); "
              f"{quota_text(info.freeze_balance)} "
              f"held by running jobs; queue limit {info.max_queue}")
    if info.balance < Decimal(str(settings.warn_balance_below)):
        return Check("balance", "WARN", f"{detail}: below {settings.warn_balance_below:g} quota",
                     "top up the TTAPI account (1 USD = 100 quota)")
    return Check("balance", "OK", detail)


def check_output_dir(settings: Settings, origins: dict[str, str], fix: bool) -> list[Check]:
    """Write access (a probe file created and deleted) and free space."""
    folder = settings.output_dir
    where = _origin(origins, "output_dir")
    change = "set TTAPI_OUTPUT_DIR (or output_dir) to a folder you can write to"
    if not folder.exists():
        if not fix:
            return [Check("output folder", "WARN", f"{folder} ({where}) does not exist yet",
                          "the server creates it at start; 'doctor --fix' creates it now")]
        try:
            settings.prepare_dirs()
        except ConfigError as exc:
            return [Check("output folder", "FAIL", str(exc), change)]
    if not folder.is_dir():
        return [Check("output folder", "FAIL", f"{folder} ({where}) is not a folder", change)]
    probe = folder / temp_filename("doctor-probe")
    try:
        with open(probe, "xb") as f:
            f.write(b"probe")
        probe.unlink()
    except OSError as exc:
        return [Check("output folder", "FAIL",
                      f"{folder} ({where}) is not writable: {exc.strerror}", change)]
    checks = [Check("output folder", "OK", f"{folder} ({where}) is writable")]
    free = shutil.disk_usage(folder).free
    text = f"{free / (1024 * MIB):.1f} GB free on the output folder's disk"
    if free < LOW_SPACE_BYTES:
        checks.append(Check("free space", "WARN", text,
                            "free some space or move output_dir: a large result needs ~50 MB"))
    else:
        checks.append(Check("free space", "OK", text))
    return checks


async def check_store(settings: Settings, fix: bool) -> list[Check]:
    """The database opens, and it agrees with the folder; ``fix`` repairs what is safe."""
    db = settings.store_path
    url = settings.database_url_value()
    if url:
        store = ImageStore(settings.output_dir, db, database_url=url,
                           storage=shared_storage(settings))
        try:
            async with store:
                return await _store_checks(store, fix)
        except (StoreError, OSError) as exc:
            return [Check("store", "FAIL", str(exc),
                          "check database_url (TTAPI_DATABASE_URL) and that PostgreSQL runs")]
    if not db.exists() and not fix:
        images = _visible_files(settings.output_dir)
        if images:
            return [Check("store", "WARN", f"no database at {db}, but {len(images)} files in "
                          "the output folder have no record", FIX_HINT)]
        return [Check("store", "OK", f"no database yet at {db} (created at first start)")]
    store = ImageStore(settings.output_dir, db, storage=shared_storage(settings))
    try:
        async with store:
            return await _store_checks(store, fix)
    except (StoreError, sqlite3.Error, OSError) as exc:
        return [Check("store", "FAIL", f"cannot open {db}: {exc}",
                      "set TTAPI_DATABASE_PATH (or database_path) to a file you can write")]


def _visible_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]


async def check_shared_storage(settings: Settings) -> Check | None:
    """With ``storage_url``: a probe object is written, read back and deleted."""
    if not settings.storage_url:
        return None
    try:
        storage = shared_storage(settings)
    except StorageError as exc:  # its client is not installed
        return Check("shared storage", "FAIL", str(exc), "pip install 'ttapi-mcp[s3]'")
    assert storage is not None
    try:
        await storage.check()
    except StorageError as exc:
        return Check("shared storage", "FAIL", str(exc), "check storage_url, storage_endpoint "
                     "and the S3 credentials (TTAPI_STORAGE_*, AWS_*)")
    finally:
        await storage.aclose()
    return Check("shared storage", "OK", f"{storage.describe()}: writes, reads and deletes")


async def _store_checks(store: ImageStore, fix: bool) -> list[Check]:
    report = await store.consistency_report()
    count = await store.count_images()
    checks = [Check("store", "OK", f"{store.location}: {count} images recorded")]

    temps = report.temp_files
    if temps and fix:
        removed = await store.cleanup_temp_files()
        kept = len(temps) - len(removed)
        detail = f"removed {len(removed)} left-over temporary files"
        checks.append(Check("temporary files", "OK" if not kept else "WARN", detail + (
            f"; kept {kept} still being written by a running server" if kept else "")))
    elif temps:
        checks.append(Check("temporary files", "WARN",
                            f"{len(temps)} in the output folder ({_names(temps)})", FIX_HINT))
    else:
        checks.append(Check("temporary files", "OK", "none"))

    orphans = report.files_without_rows
    if orphans and fix:
        adopted, left = await _record_each(orphans, store.record_existing_file)
        detail = f"recorded {adopted} image files that had no row (files kept as they are)"
        if left:
            checks.append(Check("files w/o rows", "WARN", f"{detail}; {len(left)} are not "
                                f"images and were left alone ({_names(left)})",
                                "move files that are not images out of the output folder"))
        else:
            checks.append(Check("files w/o rows", "OK", detail))
    elif orphans:
        checks.append(Check("files w/o rows", "WARN", f"{len(orphans)} files in the output "
                            f"folder have no record ({_names(orphans)})",
                            f"{FIX_HINT}: it records images, deletes nothing"))
    else:
        checks.append(Check("files w/o rows", "OK", "none"))

    if store.storage is not None:
        checks.append(await _objects_check(store, report.objects_without_rows, fix))
    missing = report.rows_without_files
    what = "objects" if store.storage is not None else "files"
    if missing and fix:
        gone = await store.forget_images(missing)
        kept = len(missing) - gone
        checks.append(Check(f"rows w/o {what}", "OK", f"removed {gone} records of deleted "
                            f"{what} (the images were already gone; the request log keeps "
                            "them)" + (f"; put back {kept} from this server's copies"
                                       if kept else "")))
    elif missing:
        checks.append(Check(f"rows w/o {what}", "WARN", f"{len(missing)} records point at "
                            f"missing {what} ({', '.join(missing[:SHOWN_NAMES])})", FIX_HINT))
    else:
        checks.append(Check(f"rows w/o {what}", "OK", "none"))
    return checks


async def _record_each(
    items: list[T], record: Callable[[T], Awaitable[object | None]]
) -> tuple[int, list[T]]:
    """How many ``record`` adopted, and the items that are not images (left alone)."""
    adopted, left = 0, []
    for item in items:
        try:
            adopted += await record(item) is not None
        except NotAnImageError:
            left.append(item)
    return adopted, left


async def _objects_check(store: ImageStore, names: list[str], fix: bool) -> Check:
    """Objects of the shared storage that no row records: recorded by ``fix``."""
    if not names:
        return Check("objects w/o rows", "OK", "none")
    if not fix:
        return Check("objects w/o rows", "WARN", f"{len(names)} objects in the shared storage "
                     f"have no record ({', '.join(names[:SHOWN_NAMES])})",
                     f"{FIX_HINT}: it records images, deletes nothing")
    adopted, left = await _record_each(names, store.record_existing_object)
    detail = f"recorded {adopted} objects that had no row (objects kept as they are)"
    if left:
        return Check("objects w/o rows", "WARN", f"{detail}; {len(left)} are not images and "
                     f"were left alone ({', '.join(left[:SHOWN_NAMES])})",
                     "remove objects that are not images from the bucket's prefix")
    return Check("objects w/o rows", "OK", detail)


async def check_issuer(settings: Settings, origins: dict[str, str]) -> list[Check]:
    """With OAuth sign-in configured: the settings agree, and the issuer publishes keys."""
    if not settings.oauth_issuer:
        return []
    from .server.auth import oauth_problem, resource_url
    from .server.jwks import IssuerKeys, KeyFetchError

    where = _origin(origins, "oauth_issuer")
    problem = oauth_problem(settings)
    if problem:
        return [Check("sign-in issuer", "FAIL", problem.removeprefix("Configuration error: "),
                      "fix the named keys, then run doctor again")]
    keys = IssuerKeys(settings.oauth_issuer)
    try:
        with anyio.fail_after(PROBE_TIMEOUT * 3):
            count = await keys.refresh()
    except (KeyFetchError, TimeoutError) as exc:
        return [Check("sign-in issuer", "FAIL", f"{settings.oauth_issuer} ({where}): "
                      f"{exc or 'no answer in time'}",
                      "check oauth_issuer (its discovery document must name exactly this "
                      "issuer) and that this machine can reach it")]
    if count == 0:
        return [Check("sign-in issuer", "FAIL", f"{settings.oauth_issuer} ({where}) publishes "
                      "no signing keys", "check the issuer's jwks_uri")]
    return [Check("sign-in issuer", "OK", f"{keys.issuer} ({where}): {count} signing key(s); "
                  f"tokens must be for {resource_url(settings)}")]


# -- the command ------------------------------------------------------------------------


async def run_checks(
    load: Callable[[dict[str, str]], Settings], fix: bool = False
) -> list[Check]:
    """All checks in order; a configuration that does not load stops the rest."""
    origins: dict[str, str] = {}
    checks = [check_installation()]
    try:
        settings = load(origins)
    except ConfigError as exc:
        message = "; ".join(line.strip("- ") for line in str(exc).splitlines()[1:]) or str(exc)
        return [*checks, Check("configuration", "FAIL", message,
                               "fix the named key where it came from, then run doctor again")]
    checks += [check_config(origins), check_key(settings, origins)]
    checks.append(await anyio.to_thread.run_sync(check_reachable, settings, origins))
    if checks[-1].status == "OK":
        checks.append(await check_balance(settings))
    checks += check_output_dir(settings, origins, fix)
    storage = await check_shared_storage(settings)
    if storage is not None:
        checks.append(storage)
    if storage is None or storage.status == "OK":  # its repairs need the bucket
        checks += await check_store(settings, fix)
    checks += await check_issuer(settings, origins)
    return checks


def run_doctor(load: Callable[[dict[str, str]], Settings], *, fix: bool = False,
               as_json: bool = False, out: TextIO | None = None) -> int:
    """Print the report; exit code 1 when any check failed, else 0."""
    out = out or sys.stdout
    checks = anyio.run(run_checks, load, fix)
    failed = any(c.status == "FAIL" for c in checks)
    if as_json:
        out.write(json.dumps({"ok": not failed, "checks": [asdict(c) for c in checks]},
                             indent=2) + "\n")
    else:
        out.write("".join(c.line() + "\n" for c in checks))
    return 1 if failed else 0


__all__ = ["Check", "run_checks", "run_doctor"]
