"""One function per user action: validate → resolve inputs → call TTAPI → store → result.

The server layer calls only these; they know nothing of MCP beyond the result model,
and report what they are doing through a ``progress`` callback.
"""

from .common import NO_KEY_MESSAGE, ProgressFn, ServiceError, Services, no_progress
from .images import edit_image, generate_image
from .jobs import fetch_job, submit_gpt4o

__all__ = [
    "NO_KEY_MESSAGE",
    "ProgressFn",
    "ServiceError",
    "Services",
    "edit_image",
    "fetch_job",
    "generate_image",
    "no_progress",
    "submit_gpt4o",
]
