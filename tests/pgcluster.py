"""A throw-away PostgreSQL cluster for the tests: initdb + pg_ctl in a temporary folder.

Started once per session on a free loopback port (unix socket in the same folder), with
durability off (the data is thrown away). Each test gets a schema of its own, named in
the URL's ``search_path``, so tests never see each other's rows.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from urllib.parse import quote

START_TIMEOUT_SECONDS = 60


def find_bin_dir() -> Path | None:
    """Where initdb and pg_ctl are: PATH first, then Debian's /usr/lib/postgresql/<ver>/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """One running cluster; ``url`` reaches its ``postgres`` database as ``postgres``."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.folder = Path(tempfile.mkdtemp(prefix="ttapi-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:  # initdb refuses root: run the cluster as postgres
            shutil.chown(self.folder, "postgres")
            command = ["su", "postgres", "-s", "/bin/sh", "-c",
                       " ".join(f"'{a}'" for a in command)]
        subprocess.run(command, check=True, capture_output=True, timeout=START_TIMEOUT_SECONDS)

    def start(self) -> Cluster:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust",
                  "--no-sync", "-E", "UTF8")
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
                   " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
                   " -c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l",
                  str(self.folder / "log"), "-w", "-t", str(START_TIMEOUT_SECONDS), "start")
        return self

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def new_schema_url(self) -> str:
        """The URL of a fresh, empty schema of this cluster."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:16]
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        return f"{self.url}?options={quote(f'-csearch_path={name}')}"
