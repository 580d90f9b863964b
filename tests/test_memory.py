"""Large freed buffers go back to the OS, so a busy server's RSS does not creep.

Each case runs in its own interpreter: malloc's settings are process-wide. The case
without the setting shows the creep the setting prevents, so the test can fail.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import sys
    from ttapi_mcp.memory import return_large_buffers_to_os

    def rss_kb():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))

    applied = sys.argv[1] == "on" and return_large_buffers_to_os()
    keep = []
    base = rss_kb()
    for _ in range(3):  # an image-sized buffer, filled, then freed, as in a call
        buffer = bytearray(8 << 20)
        buffer[:] = b"x" * len(buffer)
        keep.append(bytearray(1000))  # something small allocated after it
        del buffer
    print(applied, rss_kb() - base)
""")


def _retained_kb(mode: str) -> tuple[bool, int]:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc and /proc")
def test_freed_image_sized_buffers_leave_the_process() -> None:
    applied, retained = _retained_kb("on")
    if not applied:
        pytest.skip("no glibc mallopt here (musl?)")
    _, retained_without = _retained_kb("off")
    assert retained_without > 4096, "the creep this guards against did not show"
    assert retained < 2048


def test_it_is_a_harmless_no_op_where_unsupported(monkeypatch: pytest.MonkeyPatch) -> None:
    from ttapi_mcp import memory

    monkeypatch.setattr(memory.sys, "platform", "darwin")
    assert memory.return_large_buffers_to_os() is False
