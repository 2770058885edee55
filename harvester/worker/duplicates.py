"""'Are these bytes stored already?', asked for many images in one query instead of one each."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.models import Image, ImageState
from harvester.db.session import read_connection

WINDOW_S = 0.25  # at tens of images a second, one query answers about ten
MAX_BATCH = 128


@dataclass
class StoredBytes:
    engine: AsyncEngine
    _waiting: list[tuple[str, int, asyncio.Future[int | None]]] = field(default_factory=list)
    _timer: asyncio.TimerHandle | None = None
    _flushing: set[asyncio.Task[None]] = field(default_factory=set)  # the loop keeps weak refs

    async def stored_as(self, source_sha: str, image_id: int) -> int | None:
        """The id of another stored image with these source bytes, if there is one."""
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((source_sha, image_id, future))
        if len(self._waiting) >= MAX_BATCH:
            self._flush_soon(0)
        elif self._timer is None:
            self._flush_soon(WINDOW_S)
        return await future

    def _flush_soon(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(delay, self._start_flush)

    def _start_flush(self) -> None:
        self._timer = None
        task = asyncio.create_task(self._flush())
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _flush(self) -> None:
        batch, self._waiting = self._waiting, []
        if not batch:
            return
        try:
            async with read_connection(self.engine) as connection:
                rows = await connection.execute(
                    select(Image.source_sha256, func.min(Image.id))
                    .where(
                        Image.source_sha256.in_({sha for sha, _, _ in batch}),
                        Image.state == ImageState.STORED,
                    )
                    .group_by(Image.source_sha256)
                )
                first_stored = {sha: image_id for sha, image_id in rows}
        except Exception as exc:  # noqa: BLE001 - handed to every waiter, who decides
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for sha, image_id, future in batch:
            original = first_stored.get(sha)
            if not future.done():
                future.set_result(original if original != image_id else None)
