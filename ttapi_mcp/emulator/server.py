"""Serving the emulator: in a background thread for tests and demos, or blocking for the CLI."""

from __future__ import annotations

import socket
import sys
import threading
import time
from types import TracebackType

import uvicorn

from .app import Emulator
from .models import EmulatorOptions

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0


def _config(emulator: Emulator) -> uvicorn.Config:
    return uvicorn.Config(emulator.app, log_level="warning", lifespan="off",
                          timeout_graceful_shutdown=1, access_log=False)


class EmulatorServer:
    """uvicorn on a loopback port in a daemon thread; a context manager.

    The socket is bound before the thread starts, so port 0 resolves to a real port at once
    and `base_url` is known even before the server accepts connections.
    """

    def __init__(self, emulator: Emulator | None = None, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.emulator = emulator if emulator is not None else Emulator()
        self.host = host
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.port: int = self._sock.getsockname()[1]
        self.base_url = f"http://{host}:{self.port}"
        self.emulator.base_url = self.base_url
        self._server = uvicorn.Server(_config(self.emulator))
        self._thread: threading.Thread | None = None

    def start(self) -> EmulatorServer:
        """Start serving; returns once uvicorn accepts connections (bounded wait)."""
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name=f"ttapi-emulator-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the emulator did not start on {self.base_url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for it (bounded); forces exit when slow."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._server.should_exit = True
            thread.join(_STOP_TIMEOUT)
            if thread.is_alive():
                self._server.force_exit = True
                thread.join(_STOP_TIMEOUT)
        self._sock.close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def run_emulator(host: str, port: int, options: EmulatorOptions | None = None) -> None:
    """Serve the emulator in the foreground until interrupted (the CLI's `emulator` command)."""
    emulator = Emulator(options)
    emulator.base_url = f"http://{host}:{port}"
    print(f"TTAPI emulator listening on http://{host}:{port} (Ctrl+C to stop)", file=sys.stderr)
    config = uvicorn.Config(emulator.app, host=host, port=port, log_level="info",
                            lifespan="off", timeout_graceful_shutdown=1)
    uvicorn.Server(config).run()
