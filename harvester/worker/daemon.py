"""The long-running service: claim in batches, bounded work in flight, outcomes in batches.

Memory stays flat however long the queue: at most `concurrency` images are in flight,
and nothing is claimed beyond that. On SIGTERM the daemon stops claiming, lets work in
flight finish within a grace period, hands the rest back and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.config import Settings
from harvester.db.migrate import upgrade
from harvester.db.models import Image, ImageState, Task
from harvester.db.queue import Failure, Outcome, Queue, RetryPolicy
from harvester.db.session import create_engine, read_connection
from harvester.web.health import serve
from harvester.worker.context import Context, open_context
from harvester.worker.jobs import Result, run_image, run_task
from harvester.worker.owner import is_dead_local_owner, new_owner
from harvester.worker.progress import Counters, Reporter

log = structlog.get_logger("harvester.worker")

FLUSH_EVERY = 64
FLUSH_INTERVAL_S = 0.25
IDLE_SLEEP_S = (0.05, 1.0)
TASK_CONCURRENCY = 4


@dataclass
class Lane:
    """One queue table being worked: its claims, jobs in flight and outcomes not yet written."""

    name: str
    queue: Queue
    runner: Callable[[Context, Row[Any]], Awaitable[Result]]
    limit: int
    jobs: dict[int, asyncio.Task[None]] = field(default_factory=dict)
    pending: list[Result] = field(default_factory=list)
    held: set[int] = field(default_factory=set)
    idle: bool = False
    room: asyncio.Event = field(default_factory=asyncio.Event)


class Daemon:
    def __init__(
        self,
        ctx: Context,
        *,
        until_idle: bool = False,
        grace_seconds: float = 30.0,
        reporter: Reporter | None = None,
    ) -> None:
        settings = ctx.settings
        self.ctx = ctx
        self.owner = new_owner()
        self.until_idle = until_idle
        self.grace_seconds = grace_seconds
        self.stop = asyncio.Event()
        self.counters = Counters()
        self.reporter = reporter
        policy = RetryPolicy(settings.backoff_base_seconds, settings.backoff_max_seconds)
        self.tasks = Lane(
            "tasks", Queue(ctx.engine, Task, policy=policy), run_task, TASK_CONCURRENCY
        )
        self.images = Lane(
            "images", Queue(ctx.engine, Image, policy=policy), run_image, settings.concurrency
        )
        self._flush_lock = asyncio.Lock()

    def snapshot(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "images_in_flight": len(self.images.jobs),
            "tasks_in_flight": len(self.tasks.jobs),
            **self.counters.as_dict(),
        }

    @property
    def lanes(self) -> tuple[Lane, Lane]:
        return (self.tasks, self.images)

    async def run(self) -> Counters:
        await self._recover_dead_local_owners()
        log.info("daemon_started", owner=self.owner, until_idle=self.until_idle)
        background = [
            asyncio.create_task(self._claim_loop(self.tasks)),
            asyncio.create_task(self._claim_loop(self.images)),
            asyncio.create_task(self._heartbeat_loop()),
            asyncio.create_task(self._flush_loop()),
        ]
        if self.until_idle:
            background.append(asyncio.create_task(self._idle_watch()))
        if self.reporter is not None:
            background.append(asyncio.create_task(self.reporter.run(self)))
        try:
            await self.stop.wait()
        finally:
            await self._shutdown(background)
        return self.counters

    async def _recover_dead_local_owners(self) -> None:
        for lane in self.lanes:
            dead = [o for o in await lane.queue.lease_owners() if is_dead_local_owner(o)]
            expired = await lane.queue.expire_leases_of(dead)
            if expired:
                log.info("leases_recovered", lane=lane.name, rows=expired, owners=len(dead))

    async def _claim_loop(self, lane: Lane) -> None:
        idle_sleep = IDLE_SLEEP_S[0]
        batch = self.ctx.settings.claim_batch
        lease = self.ctx.settings.lease_seconds
        while not self.stop.is_set():
            room = lane.limit - len(lane.jobs)
            if room < min(batch, lane.limit) // 2 or room <= 0:
                lane.room.clear()
                await _first(lane.room.wait(), self.stop.wait())
                continue
            rows = await lane.queue.claim(self.owner, min(room, batch), lease)
            lane.idle = not rows
            if not rows:
                await _first(asyncio.sleep(idle_sleep), self.stop.wait())
                idle_sleep = min(idle_sleep * 2, IDLE_SLEEP_S[1])
                continue
            idle_sleep = IDLE_SLEEP_S[0]
            for row in rows:
                lane.held.add(row.id)
                lane.jobs[row.id] = asyncio.create_task(self._job(lane, row))

    async def _job(self, lane: Lane, row: Row[Any]) -> None:
        try:
            result = await lane.runner(self.ctx, row)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in one row must not stop the daemon
            log.exception("job_crashed", lane=lane.name, row_id=row.id)
            result = Failure(row.id, f"internal error: {type(exc).__name__}: {exc}", True)
        lane.pending.append(result)
        self.counters.record(lane.name, result)
        del lane.jobs[row.id]
        lane.room.set()
        if len(lane.pending) >= FLUSH_EVERY:
            await self._flush(lane)

    async def _flush(self, lane: Lane) -> None:
        async with self._flush_lock:
            results, lane.pending = lane.pending, []
            if not results:
                return
            outcomes = [r for r in results if isinstance(r, Outcome)]
            failures = [r for r in results if isinstance(r, Failure)]
            await lane.queue.finish(self.owner, outcomes)
            await lane.queue.fail(self.owner, failures)
            lane.held.difference_update(r.id for r in results)

    async def _flush_loop(self) -> None:
        while not self.stop.is_set():
            await _first(asyncio.sleep(FLUSH_INTERVAL_S), self.stop.wait())
            for lane in self.lanes:
                await self._flush(lane)

    async def _heartbeat_loop(self) -> None:
        settings = self.ctx.settings
        while not self.stop.is_set():
            await _first(asyncio.sleep(settings.heartbeat_seconds), self.stop.wait())
            for lane in self.lanes:
                held = set(lane.held)
                kept = await lane.queue.heartbeat(self.owner, sorted(held), settings.lease_seconds)
                if lost := held - kept:
                    log.warning("leases_lost", lane=lane.name, rows=len(lost))

    async def _idle_watch(self) -> None:
        while not self.stop.is_set():
            await _first(asyncio.sleep(0.5), self.stop.wait())
            busy = any(lane.jobs or lane.pending or not lane.idle for lane in self.lanes)
            if not busy and await outstanding(self.ctx.engine) == 0:
                log.info("queue_idle")
                self.stop.set()

    async def _shutdown(self, background: list[asyncio.Task[Any]]) -> None:
        self.stop.set()
        for lane in self.lanes:
            lane.room.set()
        in_flight = [job for lane in self.lanes for job in lane.jobs.values()]
        if in_flight:
            log.info("draining", jobs=len(in_flight), grace_seconds=self.grace_seconds)
            await asyncio.wait(in_flight, timeout=self.grace_seconds)
        for lane in self.lanes:
            for job in lane.jobs.values():
                job.cancel()
        for task in background:
            task.cancel()
        await asyncio.gather(*in_flight, *background, return_exceptions=True)
        for lane in self.lanes:
            await self._flush(lane)
            unfinished = sorted(lane.held)
            await lane.queue.release(self.owner, unfinished)
            if unfinished:
                log.info("handed_back", lane=lane.name, rows=len(unfinished))
        log.info("daemon_stopped", owner=self.owner, **self.counters.as_dict())


async def outstanding(engine: AsyncEngine) -> int:
    """Rows queued (due or backing off) or running, across both queues."""
    async with read_connection(engine) as connection:
        total = 0
        for model in (Task, Image):
            count = await connection.execute(
                select(func.count())
                .select_from(model)
                .where(model.state.in_([ImageState.QUEUED, ImageState.RUNNING]))
            )
            total += int(count.scalar_one())
        return total


async def _first(*waits: Awaitable[Any]) -> None:
    """Wait until the first of several awaitables finishes; cancel the rest."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def install_signal_handlers(daemon: Daemon) -> None:
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if daemon.stop.is_set():
            log.warning("second_signal_exit_now", signal=signal.Signals(signum).name)
            os._exit(128 + signum)  # the next start recovers whatever was in flight
        log.info("signal_received", signal=signal.Signals(signum).name)
        daemon.stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)


async def run_daemon(
    settings: Settings,
    *,
    until_idle: bool = False,
    grace_seconds: float = 30.0,
    reporter: Reporter | None = None,
    handle_signals: bool = False,
    http_bind: str | None = None,
) -> Counters:
    """Migrate, sweep stale temp files, then work until stopped (or idle)."""
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
        async with open_context(settings, engine) as ctx:
            swept = asyncio.create_task(asyncio.to_thread(ctx.storage.sweep_temp_files))
            daemon = Daemon(
                ctx, until_idle=until_idle, grace_seconds=grace_seconds, reporter=reporter
            )
            if handle_signals:
                install_signal_handlers(daemon)
            web = await serve(daemon.snapshot, http_bind) if http_bind else None
            started = time.monotonic()
            try:
                counters = await daemon.run()
            finally:
                if web is not None:
                    await web.cleanup()
            with contextlib.suppress(Exception):
                removed = await swept
                if removed:
                    log.info("temp_files_swept", files=removed)
            counters.elapsed_s = time.monotonic() - started
            return counters
    finally:
        await engine.dispose()
