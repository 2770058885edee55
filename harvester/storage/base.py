"""What the daemon and the exports need from any storage backend (local disk, object store)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Protocol


class Storage(Protocol):
    """Files at paths relative to a root (``<provider>/<group>/<shard>/<name>.jpg``).

    ``write`` returns once the file is complete under its final name, or raises ``OSError``
    (it may run in a worker process); ``written`` notes such a file in the process that
    records it, and ``sync`` returns once every noted file is durable, so a row may say
    stored.
    """

    @property
    def location(self) -> str:
        """Where the files live, for messages: a directory or s3://bucket/prefix."""
        ...

    async def write(self, relative: PurePosixPath | str, data: bytes) -> None: ...

    def written(self, relative: PurePosixPath | str) -> None: ...

    async def read(self, relative: PurePosixPath | str) -> bytes: ...

    def local_path(self, relative: PurePosixPath | str) -> Path | None:
        """The file on this machine's filesystem, if the backend keeps one (exports hard-link
        it); None for an object store, whose files are only read."""
        ...

    async def remove(self, relative: PurePosixPath | str) -> bool:
        """Delete a stored file (a campaign deleted with its files); False if it was gone."""
        ...

    async def list(self, folder: str = "") -> list[str]:
        """The files under a folder of the root (all of them by default), as relative paths;
        none while a file is still being written."""
        ...

    async def sync(self) -> None: ...

    def sweep_temp_files(self) -> int: ...

    async def close(self) -> None: ...


def check_relative(relative: PurePosixPath | str) -> tuple[str, ...]:
    """The parts of a path inside the root; refuses absolute paths and ``..`` lexically."""
    parts = PurePosixPath(relative).parts
    if not parts or parts[0] == "/" or ".." in parts:
        raise ValueError(f"{relative} escapes the storage root")
    return parts
