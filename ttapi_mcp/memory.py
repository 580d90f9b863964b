"""Give large freed buffers back to the operating system at once.

glibc's malloc serves requests of 128 KiB and more with ``mmap`` and returns them with
``munmap`` when freed, but after the first such free it raises that threshold (up to
32 MiB), so later multi-megabyte buffers (response bodies, base64 text, decoded images)
come from the heap and stay resident after they are freed. The server's RSS grew call
after call that way (85 -> 96 MB over two calls). Fixing the threshold turns the dynamic
adjustment off; the cost is a page fault per 4 KiB of each large buffer, which is small
next to filling it.
"""

from __future__ import annotations

import sys

_M_MMAP_THRESHOLD = -3  # from glibc's malloc.h
MMAP_THRESHOLD_BYTES = 128 * 1024


def return_large_buffers_to_os() -> bool:
    """Fix glibc's mmap threshold; False where there is no glibc (macOS, Windows, musl)."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
