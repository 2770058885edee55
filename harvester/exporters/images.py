"""Stored image bytes for exports that copy them (webdataset shards, VPR copies), from any
storage backend: read in export order, a few at a time, so an object store's latency
overlaps instead of adding up."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Sequence

from harvester.errors import StorageUnavailable
from harvester.storage.base import Storage

AHEAD = 16  # reads in flight: bounds memory to about this many images


async def read_in_order(storage: Storage, paths: Sequence[str]) -> AsyncIterator[bytes]:
    """The bytes of each path, in order; a missing or unreadable file stops the export."""
    pending: deque[asyncio.Task[bytes]] = deque()
    upcoming = iter(paths)
    try:
        for path in upcoming:
            pending.append(asyncio.create_task(_read(storage, path)))
            if len(pending) >= AHEAD:
                break
        while pending:
            data = await pending.popleft()
            following = next(upcoming, None)
            if following is not None:
                pending.append(asyncio.create_task(_read(storage, following)))
            yield data
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def _read(storage: Storage, path: str) -> bytes:
    try:
        return await storage.read(path)
    except OSError as exc:
        # obstore's messages run to many lines (request ids, debug dumps): the cause keeps them.
        said = (
            "not found"
            if isinstance(exc, FileNotFoundError)
            else (str(exc).splitlines() or [type(exc).__name__])[0]
        )
        raise StorageUnavailable(
            f"cannot read stored image {path} from {storage.location}: {said}"
        ) from exc
