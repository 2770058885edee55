"""'Are these bytes stored already?', asked for many images in one query instead of one each.

No timer: a query starts as soon as someone asks and none is running, and it answers
everyone who asked in the same loop turn. Those who ask while it runs wait only for it
to end, then go together in the next. A fixed wait to make a batch would cap throughput
at (images in flight / wait) whatever the machine (Little's law).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from harvester.db.duplicates import FirstStored
from harvester.db.session import Engine

MAX_BATCH = 500  # bound parameters in one IN (...): far under any driver's limit


@dataclass
class StoredBytes:
    engine: Engine
    _first_stored: FirstStored = field(init=False)
    _waiting: list[tuple[str, int, asyncio.Future[int | None]]] = field(default_factory=list)
    _flusher: asyncio.Task[None] | None = None
    queries: int = 0  # how many lookups ran: batching is visible to tests and profiles

    def __post_init__(self) -> None:
        self._first_stored = FirstStored(self.engine)

    async def close(self) -> None:
        """Give back the connection the lookups hold; a later lookup takes one again."""
        await self._first_stored.close()

    async def stored_as(self, source_sha: str, image_id: int) -> int | None:
        """The id of another stored image with these source bytes, if there is one."""
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((source_sha, image_id, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_while_waiting())
        return await future

    async def _flush_while_waiting(self) -> None:
        batch: list[tuple[str, int, asyncio.Future[int | None]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
                await self._answer(batch)
        except asyncio.CancelledError:  # the daemon is stopping: nobody may wait for ever
            for _, _, future in [*batch, *self._waiting]:
                future.cancel()
            self._waiting = []
            raise
        finally:
            self._flusher = None

    async def _answer(self, batch: list[tuple[str, int, asyncio.Future[int | None]]]) -> None:
        self.queries += 1
        try:
            first_stored = await self._first_stored({sha for sha, _, _ in batch})
        except Exception as exc:  # noqa: BLE001 - handed to every waiter, who decides
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for sha, image_id, future in batch:
            original = first_stored.get(sha)
            if not future.done():
                future.set_result(original if original != image_id else None)
