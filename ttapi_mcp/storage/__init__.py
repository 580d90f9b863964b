"""Image bytes behind one small interface: a local folder (default) or an S3-compatible bucket.

``open_storage`` picks the backend from a location: a folder path (or ``file://``) for
:class:`LocalFolder`, ``s3://bucket/prefix`` for :class:`~.s3.S3Bucket` (loaded only
then: its client is a compiled extension that a local setup never imports).
"""

from .base import ImageStorage, StorageError, check_name
from .local import LocalFolder
from .open import S3Options, open_storage, shared_storage

__all__ = ["ImageStorage", "LocalFolder", "S3Options", "StorageError", "check_name",
           "open_storage", "shared_storage"]
