"""Several ``ttapi-mcp serve --transport http`` replicas on one PostgreSQL, behind haproxy.

The balancer is the sample configuration of the README's deployment guide (round robin;
a session of the 2025-11-25 era sticks to the replica that created it, through its
``Mcp-Session-Id``; health checks on ``/healthz`` take a dead replica out within a second).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
from httpproc import free_port

ROOT = Path(__file__).resolve().parents[1]
START_SECONDS = 30

HAPROXY_CONFIG = """\
global
    maxconn 1024
    stats socket {socket} mode 600 level admin
defaults
    mode http
    timeout connect 2s
    timeout client 300s
    timeout server 300s
    retries 2
    option redispatch
frontend mcp
    bind 127.0.0.1:{port}
    default_backend replicas
backend replicas
    balance roundrobin
    # 2025-11-25 sessions: back to the replica that created them (no header: round robin).
    stick-table type string len 128 size 100k expire 1h
    stick on req.hdr(mcp-session-id)
    stick store-response res.hdr(mcp-session-id)
    option httpchk GET /healthz
{servers}
"""


def haproxy_binary() -> str | None:
    return shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)


class Replica:
    """One server process; ``origin`` is its own address (the balancer's is shared)."""

    def __init__(self, name: str, env: dict[str, str], folder: Path) -> None:
        self.name, self.env, self.port = name, env, free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.log = folder / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Replica:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ttapi_mcp", "serve", "--transport", "http",
                 "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd="/")
        deadline = time.monotonic() + START_SECONDS
        while not _healthy(self.origin):
            assert self.proc.poll() is None, self.log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, f"{self.name} did not start"
            time.sleep(0.1)
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown, no lease released (a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def _healthy(origin: str) -> bool:
    try:
        return httpx2.get(f"{origin}/healthz", timeout=1).status_code == 200
    except httpx2.HTTPError:
        return False


class Balancer:
    """haproxy in front of fixed replica ports (a replaced replica reuses its port)."""

    def __init__(self, binary: str, ports: list[int], folder: Path, port: int) -> None:
        self.port = port
        self.origin = f"http://127.0.0.1:{port}"
        servers = "\n".join(
            f"    server r{i} 127.0.0.1:{p} check inter 300ms fall 1 rise 1"
            for i, p in enumerate(ports))
        self.config = folder / "haproxy.cfg"
        self.socket = folder / "haproxy.sock"
        self.config.write_text(HAPROXY_CONFIG.format(port=port, servers=servers,
                                                     socket=self.socket))
        self.log = folder / "haproxy.log"
        self.binary = binary
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Balancer:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([self.binary, "-db", "-f", str(self.config)],
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_SECONDS
        while not _healthy(self.origin):
            assert self.proc.poll() is None, self.log.read_text(errors="replace")
            assert time.monotonic() < deadline, "haproxy did not start"
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def command(self, line: str) -> str:
        """One command on haproxy's admin socket (the runtime API); its answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.socket))
            sock.sendall(line.encode() + b"\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        return answer.decode()

    def drain(self, server: str, timeout: float = 30.0) -> None:
        """Send no new requests to ``server`` and wait until its requests are answered:
        the first step of a rolling restart."""
        self.command(f"set server replicas/{server} state drain")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for row in self.command("show stat").splitlines():
                fields = row.split(",")
                if fields[:2] == ["replicas", server] and fields[4] == "0":
                    return
            time.sleep(0.05)
        raise AssertionError(f"{server} still had requests after {timeout} s")

    def ready(self, server: str) -> None:
        self.command(f"set server replicas/{server} state ready")


def replica_env(base_url: str, key: str, folder: Path, database_url: str,
                public_base_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTAPI_")}
    env.update({
        "PYTHONPATH": str(ROOT), "TTAPI_BASE_URL": base_url, "TTAPI_API_KEY": key,
        "TTAPI_OUTPUT_DIR": str(folder / "out"),
        "TTAPI_DATABASE_PATH": str(folder / "db" / "store.sqlite3"),
        "TTAPI_DATABASE_URL": database_url, "TTAPI_PUBLIC_BASE_URL": public_base_url,
        "TTAPI_LEASE_SECONDS": "1.5", "TTAPI_POLL_FIRST_DELAY": "0.1",
        "TTAPI_POLL_INTERVAL": "0.2", "TTAPI_POLL_MAX_INTERVAL": "0.3",
        "TTAPI_RETRY_BASE_DELAY": "0.01", "TTAPI_RETRY_MAX_DELAY": "0.05",
        "TTAPI_ALLOW_PRIVATE_URLS": "true", "TTAPI_LOG_LEVEL": "WARNING",
    })
    return env
