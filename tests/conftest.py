"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ttapi_mcp.emulator import Emulator, EmulatorServer

# -- TTAPI emulator -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[EmulatorServer]:
    """One emulator on a random loopback port for the whole test session."""
    with EmulatorServer(Emulator(), host="127.0.0.1", port=0) as server:
        yield server


@pytest.fixture
def emulator(emulator_server: EmulatorServer) -> Emulator:
    """The running emulator, reset to defaults; `emulator.base_url` is its origin."""
    em = emulator_server.emulator
    em.reset()
    em.base_url = emulator_server.base_url
    return em


# -- MCP server (server layer) ---------------------------------------------------------------
# Settings pointing at the emulator with a temporary output folder and database, and a
# helper to open an in-memory MCP client in either protocol era.

from contextlib import asynccontextmanager, contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

CANARY_KEY = "sk-canary-7Qz4Xw9Lm2Pv8Rt6"
"""A key that must never appear in any result, resource, prompt, error or log line."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_server_settings(base_url: str, tmp_path: Path, **overrides: Any) -> Any:
    from pydantic import SecretStr

    from ttapi_mcp.config import Settings

    values: dict[str, Any] = dict(
        api_key=SecretStr(CANARY_KEY), base_url=base_url, output_dir=tmp_path / "out",
        database_path=tmp_path / "db" / "store.sqlite3", poll_first_delay=0.05,
        poll_interval=0.05, poll_max_interval=0.1, wait_budget_seconds=10.0,
        retry_base_delay=0.01, retry_max_delay=0.05, allow_private_urls=True,
    )
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def server_settings(emulator: Emulator, tmp_path: Path) -> Any:
    """Settings for a server talking to the emulator; files under tmp_path."""
    emulator.options.job_seconds = 0.2
    return make_server_settings(emulator.base_url, tmp_path)


@pytest.fixture(params=["auto", "legacy"])
def client_mode(request: pytest.FixtureRequest) -> str:
    """Both protocol eras: modern (default) and the 2025 initialize handshake."""
    return str(request.param)


@asynccontextmanager
async def mcp_client(settings: Any, mode: str = "auto", **kwargs: Any) -> Any:
    """An in-memory mcp.Client connected to a freshly built server."""
    from mcp import Client

    from ttapi_mcp.server.app import build_server

    async with Client(build_server(settings), mode=mode, **kwargs) as client:  # type: ignore[arg-type]
        yield client


@contextmanager
def serve_http(settings: Any, public: bool = False) -> Iterator[str]:
    """The real streamable-HTTP app on uvicorn in a thread, on a random loopback port.

    Yields the origin (``http://127.0.0.1:PORT``); with ``public``, that origin is also the
    server's ``public_base_url`` (the port is bound first, so it is known in advance).
    """
    import socket
    import threading
    import time

    import uvicorn

    from ttapi_mcp.server.app import build_server
    from ttapi_mcp.server.http import build_http_app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    origin = f"http://127.0.0.1:{sock.getsockname()[1]}"
    if public:
        settings = settings.model_copy(update={"public_base_url": origin})
    app = build_http_app(settings, build_server(settings))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "HTTP server did not start"
        time.sleep(0.01)
    try:
        yield origin
    finally:
        server.should_exit = True
        thread.join(10)


# -- store backends: SQLite and a throw-away PostgreSQL cluster --------------------------------

from collections.abc import Iterator as _Iterator  # noqa: E402


@pytest.fixture(scope="session")
def pg_cluster() -> _Iterator[Any]:
    """One PostgreSQL cluster for the session; skipped only when no binaries exist."""
    from pgcluster import Cluster, find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("no PostgreSQL binaries (initdb, pg_ctl): apt-get install postgresql")
    cluster = Cluster(bin_dir).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """Each store test on both backends: None (SQLite) or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return None
    cluster = request.getfixturevalue("pg_cluster")
    return str(cluster.new_schema_url())


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> _Iterator[Any]:
    """moto's S3 server for the session (the dev extra installs it: never skipped)."""
    from s3server import S3Server

    server = S3Server(tmp_path_factory.mktemp("s3")).start()
    try:
        yield server
    finally:
        server.stop()
