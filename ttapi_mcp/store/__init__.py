"""The image store: files in the output folder plus a SQLite record (see :mod:`.core`)."""

from .core import ImageStore, StoreError
from .models import ConsistencyReport, ImageSummary, JobRecord, StoredImage, scrub_secrets

__all__ = [
    "ConsistencyReport",
    "ImageStore",
    "ImageSummary",
    "JobRecord",
    "StoreError",
    "StoredImage",
    "scrub_secrets",
]
