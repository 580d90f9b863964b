"""Result URLs served by the emulator itself, with a real expiry like a CDN's signed links."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

from .render import RenderSpec

_MAX_FILES = 2000


@dataclass
class StoredFile:
    """A result URL: what to render and until when (monotonic seconds) it may be fetched."""

    spec: RenderSpec
    expires_at: float


class FileStore:
    """Tokens → render specs; bytes are rendered (and cached) when downloaded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, StoredFile] = {}

    def add(self, spec: RenderSpec, ttl: float, *, expired: bool = False) -> str:
        """Register a result and return its file name (`token.ext`)."""
        token = secrets.token_urlsafe(12)
        name = f"{token}.{'jpg' if spec.output_format == 'jpeg' else spec.output_format}"
        expires = time.monotonic() + (-1.0 if expired else ttl)
        with self._lock:
            self._files[name] = StoredFile(spec, expires)
            while len(self._files) > _MAX_FILES:
                self._files.pop(next(iter(self._files)))
        return name

    def expire(self, name: str) -> None:
        with self._lock:
            if name in self._files:
                self._files[name].expires_at = time.monotonic() - 1.0

    def get(self, name: str) -> StoredFile | None:
        with self._lock:
            return self._files.get(name)

    def clear(self) -> None:
        with self._lock:
            self._files.clear()


def url_for(base_url: str, name: str) -> str:
    """Absolute URL of a stored file under the emulator's own origin."""
    return f"{base_url.rstrip('/')}/files/{name}"
