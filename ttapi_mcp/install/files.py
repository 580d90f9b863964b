"""Reading and replacing a client's configuration file without ever leaving it half written.

The new text goes to a temporary file in the same folder, is flushed to disk, then renamed
over the old one; the old file is first copied to a dated backup next to it. A symbolic
link (a dotfiles repository, say) is followed, so the link stays a link.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path

NEW_FILE_MODE = 0o600
"""A configuration that holds a key is readable by its owner only."""


class InstallError(Exception):
    """Install or uninstall cannot go on; the message says why and what to do."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def target_of(path: Path) -> Path:
    """The file to write: ``path``, or what it links to."""
    return path.resolve() if path.is_symlink() else path


def read_text(path: Path) -> str | None:
    """The file's text, or None when it does not exist yet."""
    try:
        return target_of(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise InstallError(f"{path} is not UTF-8 text; nothing was changed. Fix or move the "
                           "file, then run the command again.") from None
    except OSError as exc:
        raise InstallError(f"cannot read {path} ({exc.strerror}); nothing was changed.") from None


def backup_name(path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = path.with_name(f"{path.name}.{stamp}.bak")
    for number in range(1, 100):
        if not candidate.exists():
            return candidate
        candidate = path.with_name(f"{path.name}.{stamp}-{number}.bak")
    raise InstallError(f"too many backups of {path} this second; try again.")


def replace_text(path: Path, text: str) -> Path | None:
    """Write ``text`` to ``path`` atomically; returns the backup of the old file, if any."""
    target = target_of(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        backup = None
        mode = NEW_FILE_MODE
        if target.exists():
            mode = target.stat().st_mode & 0o777
            backup = backup_name(target)
            shutil.copy2(target, backup)
        fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temp, mode)
            os.replace(temp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
    except OSError as exc:
        raise InstallError(f"cannot write {target} ({exc.strerror}); the old file is "
                           "unchanged.") from None
    return backup
