"""The storage a command's settings name: an object store, else the local directory."""

from __future__ import annotations

from harvester.config import Settings
from harvester.storage.base import Storage
from harvester.storage.local import LocalStorage


def open_storage(settings: Settings) -> Storage:
    """The object store named by HARVESTER_STORAGE_URL, else the local directory."""
    if settings.storage_url is not None:
        from harvester.storage.s3 import S3Storage  # obstore loads only when it is used

        return S3Storage(settings.storage_url)
    return LocalStorage(settings.storage_root)
