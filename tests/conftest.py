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
