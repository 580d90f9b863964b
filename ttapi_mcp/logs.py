"""Logging to stderr, with every configured secret scrubbed from every record.

In stdio mode stdout belongs to the protocol, so logs never go there. The
scrubbing filter is a second line of defence: no code should log a key, but an
upstream error that echoes headers must not leak one either.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

from .keycheck import secret_forms

REDACTED = "[redacted]"


class RedactSecrets(logging.Filter):
    """Replaces each secret in the formatted message (and exception text) of a record."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Every escaped form too (repr, JSON, percent-encoding), longest first.
        forms = {form for s in secrets if s for form in secret_forms(s)}
        self.secrets = sorted(forms, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            message += "\n" + record.exc_text
            record.exc_text = None
        for secret in self.secrets:
            message = message.replace(secret, REDACTED)
        record.msg, record.args = message, None
        return True


def configure_logging(level: str, secrets: Iterable[str] = ()) -> None:
    """Send ttapi-mcp's and the SDK's logs to stderr at `level`, secrets scrubbed."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
