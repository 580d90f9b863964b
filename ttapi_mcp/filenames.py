"""Safe, readable file names for saved images and temporary files.

Names are built only from ASCII letters, digits, ``-``, ``_`` and ``.`` with a bounded
length, so a prompt full of ``../``, NUL bytes, emoji or Windows device names cannot
escape the output folder or produce a name some file system refuses. Every image name
starts with a timestamp, which makes reserved names such as ``CON`` or ``NUL``
impossible by construction.
"""

from __future__ import annotations

import os
import re
import secrets
import time
import unicodedata
from pathlib import Path

SLUG_MAX = 40
SHORT_ID_LENGTH = 12
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_TEMP_PID = re.compile(r"\.(\d{1,10})\.tmp$")


def new_short_id() -> str:
    """A random id (~62 bits) of lower-case letters and digits.

    Lower case only, so two ids can never collide on a case-insensitive file system.
    """
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(SHORT_ID_LENGTH))


def prompt_slug(prompt: str | None, max_len: int = SLUG_MAX) -> str:
    """Fold a prompt to ``a-z0-9`` words joined by ``-``; never empty (``image``)."""
    folded = unicodedata.normalize("NFKD", prompt or "")
    ascii_text = folded.encode("ascii", "ignore").decode("ascii").lower()
    slug = _NOT_SLUG.sub("-", ascii_text).strip("-")
    slug = slug[:max_len].rstrip("-")
    return slug or "image"


def image_filename(created_at: float, prompt: str | None, short_id: str, ext: str) -> str:
    """``YYYYMMDD-HHMMSS_<slug>_<shortid>.<ext>`` in local time (what a user expects to see)."""
    if not re.fullmatch(r"[a-z0-9]{1,32}", short_id):
        raise ValueError(f"invalid short id {short_id[:40]!r}: expected 1-32 of a-z0-9")
    if not re.fullmatch(r"[a-z0-9]{1,8}", ext):
        raise ValueError(f"invalid extension {ext[:20]!r}: expected 1-8 of a-z0-9")
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(created_at))
    return f"{stamp}_{prompt_slug(prompt)}_{short_id}.{ext}"


def temp_filename(label: str) -> str:
    """``.<label>.<pid>.tmp``: hidden, recognisable as temporary, and tagged with its owner.

    The process id lets a cleanup on start remove the leftovers of a crashed process
    without touching the in-flight files of another live server sharing the folder.
    """
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip(".-")[:120] or "file"
    return f".{safe}.{os.getpid()}.tmp"


def temp_owner_pid(name: str) -> int | None:
    """The process id encoded by :func:`temp_filename`, if any."""
    match = _TEMP_PID.search(name)
    return int(match.group(1)) if match else None


def is_temp_name(name: str) -> bool:
    """True for names of the ``.*.tmp`` family (ours or left over)."""
    return name.startswith(".") and name.endswith(".tmp")


def safe_child(directory: Path, name: str) -> Path:
    """``directory / name``, refusing any name whose resolved parent is not ``directory``."""
    base = directory.resolve()
    candidate = (base / name).resolve()
    if candidate.parent != base or name in ("", ".", ".."):
        raise ValueError(f"refusing to write {name[:100]!r} outside {base}")
    return candidate
