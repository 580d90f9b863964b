"""Logging to stderr, with every configured secret scrubbed from every record.

In stdio mode stdout belongs to the protocol, so logs never go there. The
scrubbing filter is a second line of defence: no code should log a key, but an
upstream error that echoes headers must not leak one either.

With ``log_format: "json"`` each record is one JSON object per line, carrying the id
of the HTTP request and of the job it was written for (context variables set by the
HTTP layer and the job runner), so a log store can follow one call across lines.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from contextvars import ContextVar

from .keycheck import secret_forms

REDACTED = "[redacted]"

request_id_var: ContextVar[str | None] = ContextVar("ttapi_request_id", default=None)
"""The id of the HTTP request being served (see server/ops.py)."""
job_id_var: ContextVar[str | None] = ContextVar("ttapi_job_id", default=None)
"""The id of the job whose work is running (see service/runner.py)."""


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


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC), level, logger, message, request and job id."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        for key, var in (("request_id", request_id_var), ("job_id", job_id_var)):
            value = var.get()
            if value is not None:
                entry[key] = value
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, secrets: Iterable[str] = (), fmt: str = "text") -> None:
    """Send ttapi-mcp's and the SDK's logs to stderr at `level`, secrets scrubbed."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
