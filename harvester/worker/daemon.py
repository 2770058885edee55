"""The long-running service: claim in batches, bounded work in flight, outcomes in batches.

Memory stays flat however long the queue: at most `concurrency` images are in flight
(fewer while fewer keep the workers busy), and nothing is claimed beyond that. On
SIGTERM the daemon stops claiming, lets work in flight finish within a grace period,
hands the rest back and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import structlog
from aiohttp import web

from harvester.backoff import Backoff
from harvester.config import Settings
from harvester.db.backlog import anything_left, due_later
from harvester.db.campaigns import blocked_campaigns, pause_campaigns_sharing_key
from harvester.db.clock import utcnow
from harvester.db.counts import campaign_counts
from harvester.db.file_watch import DatabaseFile
from harvester.db.migrate import upgrade
from harvester.db.models import Image, Task
from harvester.db.queue import Failure, Outcome, Queue, QueueRow, RetryPolicy
from harvester.db.session import (
    HeldConnection,
    create_engine,
    database_problem,
    require_database,
)
from harvester.errors import (
    DatabaseUnavailable,
    HarvesterError,
    RecordRefused,
    StorageUnavailable,
)
from harvester.http import InvalidCredentials
from harvester.log import redactor
from harvester.outcomes import Result
from harvester.storage.local import LocalStorage
from harvester.web.dashboard import add_dashboard_routes
from harvester.web.health import add_health_routes
from harvester.web.metrics import JobLabels, Metrics, add_metrics_routes
from harvester.web.server import serve, url_of
from harvester.worker.context import Context, open_context
from harvester.worker.interrupts import Interrupts
from harvester.worker.jobs import run_image, run_task
from harvester.worker.owner import is_dead_local_owner, new_owner
from harvester.worker.progress import Counters, Reporter, Watched

log = structlog.get_logger("harvester.worker")

FLUSH_EVERY = 64
DB_ERRORS = (DatabaseUnavailable,)  # harvester.db wraps every driver error as this
T = TypeVar("T")


class DaemonError(HarvesterError):
    """The daemon had to stop before its work was done."""

    reason = "daemon_stopped"


# An outcome waits at most this long to be written (a kill costs at most this much work);
# the timer starts with the first outcome waiting, none runs while none waits.
FLUSH_INTERVAL_S = 0.25
FILE_WATCH_INTERVAL_S = 0.5  # one stat() call: cheap enough to notice a deleted SQLite file soon
# An empty queue is polled 0.05 s after the last claim, then ever less often, up to 1 s.
IDLE_BACKOFF = Backoff(0.05, 1.0)
# A database that does not answer is asked again after 1 s, then ever less often, up to 30 s.
DATABASE_BACKOFF = Backoff(1.0, 30.0)
TASK_CONCURRENCY = 4


def claim_size(room: int, batch: int, limit: int) -> int:
    """Rows to claim now: none until half a batch fits, so claims come in batches; a
    multiple of 4 from 4 up, so that few claim sizes recur (PostgreSQL keeps a plan for
    each size written into its claim, `one_statement_claim`)."""
    if room < min(batch, limit) // 2 or room <= 0:
        return 0
    wanted = min(room, batch)
    return wanted - wanted % 4 if wanted >= 4 else wanted


@dataclass
class Lane:
    """One queue table being worked: its claims, jobs in flight and outcomes not yet written."""

    name: str
    queue: Queue
    runner: Callable[[Context, QueueRow], Awaitable[Result]]
    limit: Callable[[], int]
    jobs: dict[int, asyncio.Task[None]] = field(default_factory=dict)
    pending: list[Result] = field(default_factory=list)
    held: set[int] = field(default_factory=set)
    labels: dict[int, JobLabels] = field(default_factory=dict)  # held rows, for metrics
    idle: bool = False
    room: asyncio.Event = field(default_factory=asyncio.Event)


class _Stop(asyncio.Event):
    """The daemon's stop, which also wakes whatever waits on one of `wakes`: a loop waits on
    its own event alone, not on it and the stop at once (two tasks made and cancelled for
    every wait, several times a second, for each loop)."""

    def __init__(self) -> None:
        super().__init__()
        self.wakes: list[asyncio.Event] = []

    def set(self) -> None:
        super().set()
        for wake in self.wakes:
            wake.set()


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
        self.stop = _Stop()
        # A claim found nothing, or outcomes were written: the moments the daemon may have
        # become idle, when `--until-idle` asks the database whether anything is left.
        self.maybe_idle = asyncio.Event()
        self._outcomes = asyncio.Event()  # an outcome waits to be written
        self._flush_now = asyncio.Event()  # a lane holds FLUSH_EVERY outcomes: write them now
        self.released = asyncio.Event()
        self.fatal: str | None = None
        self.counters = Counters()
        self.reporter = reporter
        policy = RetryPolicy(settings.backoff_base_seconds, settings.backoff_max_seconds)
        capped = settings.max_retry_after_seconds
        self.tasks = Lane(
            "tasks",
            Queue(ctx.engine, Task, policy=policy, max_retry_after_s=capped),
            run_task,
            lambda: TASK_CONCURRENCY,
        )
        self.images = Lane(
            "images",
            Queue(ctx.engine, Image, policy=policy, max_retry_after_s=capped),
            run_image,
            lambda: ctx.window.limit,
        )
        self.stop.wakes += [self.maybe_idle, self._outcomes, self._flush_now]
        self.stop.wakes += [lane.room for lane in self.lanes]
        self._flush_lock = asyncio.Lock()
        self._probe = HeldConnection(ctx.engine)  # "anything to claim?", asked while idle
        self._paused_for_key: set[int] = set()  # campaigns whose key was refused
        self.metrics = Metrics(
            ctx.engine,
            http=[ctx.http.stats],
            rescues=lambda: {lane.name: lane.queue.rescued for lane in self.lanes},
        )

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
            self._spawn(self._claim_loop(self.tasks), "claim tasks"),
            self._spawn(self._claim_loop(self.images), "claim images"),
            self._spawn(self._flush_loop(), "record outcomes"),
        ]
        heartbeat = self._spawn(self._heartbeat_loop(), "heartbeat")
        database_file = DatabaseFile.of(self.ctx.engine)
        if database_file is not None:
            background.append(self._spawn(self._file_watch(database_file), "database file"))
        if self.until_idle:
            background.append(self._spawn(self._idle_watch(), "idle watch"))
        if self.reporter is not None:
            watched = Watched(
                self.counters,
                lambda: len(self.images.jobs),
                partial(campaign_counts, self.ctx.engine),
            )
            background.append(self._spawn(self.reporter.run(watched), "progress"))
        try:
            await self.stop.wait()
        finally:
            await self._shutdown(background, heartbeat)
        if self.fatal is not None:
            raise DaemonError(f"the daemon stopped early: {self.fatal}")
        return self.counters

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """A background loop; if one dies, the daemon stops rather than run half-blind."""
        task = asyncio.create_task(work, name=name)

        def ended(done: asyncio.Task[None]) -> None:
            if not done.cancelled() and done.exception() is not None:
                log.error("loop_crashed", loop=name, error=_scrubbed(done.exception()))
                self._stop_for(f"{name} loop crashed")

        task.add_done_callback(ended)
        return task

    def _stop_for(self, reason: str) -> None:
        self.fatal = self.fatal or reason
        self.stop.set()

    async def _recover_dead_local_owners(self) -> None:
        for lane in self.lanes:
            dead = [o for o in await lane.queue.lease_owners() if is_dead_local_owner(o)]
            expired = await lane.queue.expire_leases_of(dead)
            if expired:
                log.info("leases_recovered", lane=lane.name, rows=expired, owners=len(dead))
        # A killed daemon's slices of the keys' and hosts' rates, left to lapse, would leave
        # this one nothing to call with for up to a lease (30 s by default) after a restart.
        shares = self.ctx.rate_shares
        dead = [h for h in await shares.holder_names() if is_dead_local_owner(h)]
        dropped = await shares.drop_holders(dead)
        if dropped:
            log.info("leases_recovered", lane="rate_shares", rows=dropped, owners=len(dead))

    async def _claim_loop(self, lane: Lane) -> None:
        idle_sleeps = IDLE_BACKOFF.delays()
        lease = self.ctx.settings.lease_seconds
        while not self.stop.is_set():
            wanted = self._wanted(lane)
            if not wanted:
                lane.room.clear()
                await lane.room.wait()  # set by a job that leaves room enough, or the stop
                continue
            if lane.idle and not await self._database(
                "claim", partial(lane.queue.claimable, self._probe), False
            ):
                self.maybe_idle.set()  # as after a claim that found nothing, for less
                await self._nap(next(idle_sleeps))
                continue
            nothing: Sequence[QueueRow] = []
            rows = await self._database(
                "claim", partial(lane.queue.claim, self.owner, wanted, lease), nothing
            )
            lane.idle = not rows
            if not rows:
                self.maybe_idle.set()
                await self._nap(next(idle_sleeps))
                continue
            idle_sleeps = IDLE_BACKOFF.delays()
            for row in rows:
                if row.id in lane.jobs:  # still at work on a lease it lost and won back
                    continue
                lane.held.add(row.id)
                what = row.provider if lane is self.images else row.kind
                lane.labels[row.id] = JobLabels(what, row.campaign_id)
                lane.jobs[row.id] = asyncio.create_task(self._job(lane, row))

    def _wanted(self, lane: Lane) -> int:
        limit = lane.limit()
        return claim_size(limit - len(lane.jobs), self.ctx.settings.claim_batch, limit)

    async def _nap(self, seconds: float) -> None:
        """Sleep, or less if the daemon stops: one timer, no task made for it."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.stop.wait()

    async def _database(
        self, what: str, call: Callable[[], Awaitable[T]], stopped: T, *, outage_only: bool = False
    ) -> T:
        """Ride out a database outage: back off and try again until it answers or we stop.
        With `outage_only`, an error while the database answers is raised instead."""
        for delay in DATABASE_BACKOFF.delays():
            try:
                return await call()
            except DB_ERRORS as exc:
                if outage_only and await database_problem(self.ctx.engine) is None:
                    raise
                log.warning("database_error", during=what, error=_scrubbed(exc), retry_in_s=delay)
                await self._nap(delay)
                if self.stop.is_set():
                    return stopped
        raise AssertionError("unreachable: the back-off never runs out")

    async def _job(self, lane: Lane, row: QueueRow) -> None:
        me = asyncio.current_task()
        run = partial(lane.runner, self.ctx, row)
        try:
            # A job's effects are idempotent, so one caught by an outage simply runs again.
            outcome = await self._database(f"{lane.name} job", run, None, outage_only=True)
        except StorageUnavailable as exc:
            log.error("storage_unavailable", error=str(exc))
            self._stop_for(str(exc))  # the row stays held and is handed back at shutdown
            return
        except Exception as exc:  # a bug in one row must not stop the daemon
            log.exception("job_crashed", lane=lane.name, row_id=row.id)
            outcome = Failure(row.id, _scrubbed(exc), retryable=True, reason="internal_error")
        finally:
            if lane.jobs.get(row.id) is me:
                del lane.jobs[row.id]
            if self._wanted(lane):  # the claim loop is woken only when it would claim
                lane.room.set()
        if outcome is None:  # stopped during an outage: the row is handed back at shutdown
            return
        result: Result = outcome
        if isinstance(result, Failure) and result.reason == InvalidCredentials.reason:
            await self._pause_for_key(row, result)
        lane.pending.append(result)
        self._outcomes.set()
        if len(lane.pending) >= FLUSH_EVERY:
            self._flush_now.set()

    async def _pause_for_key(self, row: QueueRow, failure: Failure) -> None:
        """A refused key fails every call made with it: pause the campaigns using it after
        the first refusal instead of failing each of their queries in turn."""
        if row.campaign_id in self._paused_for_key:
            return
        pause = partial(
            pause_campaigns_sharing_key,
            self.ctx.engine,
            row.campaign_id,
            reason=failure.reason,
            message=failure.error,
        )
        none: list[str] = []
        paused = await self._database("pause campaigns", pause, none)
        self._paused_for_key.add(row.campaign_id)
        if paused:
            log.warning(
                "campaigns_paused", campaigns=paused, reason=failure.reason, error=failure.error
            )

    async def _flush(self, lane: Lane) -> None:
        """Write outcomes, then failures, each kind in one go; on error, what is not written
        yet is kept for the next try. Outcomes written are not: written again, they would
        find their leases ended and not be counted."""
        async with self._flush_lock:
            results, lane.pending = lane.pending, []
            if not results:
                return
            outcomes = [r for r in results if isinstance(r, Outcome)]
            failures = [r for r in results if isinstance(r, Failure)]
            try:
                await self.ctx.storage.sync()  # files durable before rows say "stored"
                await self._write(lane, outcomes)
                outcomes = []
                await self._write(lane, failures)
            except BaseException:
                lane.pending[:0] = [*outcomes, *failures]
                self._outcomes.set()
                raise
            self.maybe_idle.set()

    async def _write(self, lane: Lane, results: Sequence[Result]) -> None:
        """Record results and count them as the database recorded them."""
        try:
            left_as = await _record(lane.queue, self.owner, results)
        except RecordRefused:
            results, left_as = await _record_each(lane.queue, self.owner, results)
        lane.held.difference_update(r.id for r in results)
        self.counters.record(lane.name, results, left_as)
        labelled = [(lane.labels.pop(r.id), r) for r in results if r.id in lane.labels]
        await self.metrics.count(lane.name, labelled, left_as)

    async def _flush_loop(self) -> None:
        """Writes outcomes FLUSH_INTERVAL_S after the first one waits (at once for a full
        batch); with none waiting it sleeps on an event, no timer ticking."""
        while not self.stop.is_set():
            await self._outcomes.wait()
            if self.stop.is_set():
                return  # the shutdown writes what is left
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FLUSH_INTERVAL_S):
                    await self._flush_now.wait()
            # Cleared before the flush: an outcome that comes while it runs sets them again.
            self._outcomes.clear()
            self._flush_now.clear()
            try:
                await self._database("flush", self._flush_all, None)
            except StorageUnavailable as exc:  # files cannot be made durable: rows stay held
                log.error("storage_unavailable", error=str(exc))
                self._stop_for(str(exc))
                return

    async def _flush_all(self) -> None:
        for lane in self.lanes:
            await self._flush(lane)

    async def _heartbeat_loop(self) -> None:
        """Runs until every row is flushed or handed back, the drain included."""
        settings = self.ctx.settings
        while not self.released.is_set():
            await _wait_for_any(asyncio.sleep(settings.heartbeat_seconds), self.released.wait())
            for lane in self.lanes:
                held = set(lane.held)
                renew = partial(
                    lane.queue.heartbeat, self.owner, sorted(held), settings.lease_seconds
                )
                # If the database cannot answer before we stop, assume the leases held.
                renewed = await self._database("heartbeat", renew, held)
                # Rows flushed while the heartbeat was out are finished, not lost.
                if lost := (held - renewed) & lane.held:
                    self._abandon(lane, lost)

    def _abandon(self, lane: Lane, lost: set[int]) -> None:
        """Rows whose lease ran out belong to someone else now: stop working on them."""
        log.warning("leases_lost", lane=lane.name, rows=len(lost))
        for row_id in lost:
            job = lane.jobs.pop(row_id, None)
            if job is not None:
                job.cancel()
        lane.held.difference_update(lost)
        for row_id in lost:
            lane.labels.pop(row_id, None)
        lane.pending = [r for r in lane.pending if r.id not in lost]
        lane.room.set()

    async def _file_watch(self, database_file: DatabaseFile) -> None:
        while not self.stop.is_set():
            problem = database_file.problem()
            if problem is not None:
                log.error("database_file_gone", error=problem)
                self._stop_for(problem)
                return
            await self._nap(FILE_WATCH_INTERVAL_S)

    async def _idle_watch(self) -> None:
        """Asked when the daemon may have become idle, not on a timer: an empty queue is left
        as soon as both lanes have claimed nothing, and a finished one once the last outcomes
        are written."""
        while not self.stop.is_set():
            await self.maybe_idle.wait()  # the stop sets it too
            self.maybe_idle.clear()
            if self.stop.is_set():
                return
            if any(lane.jobs or lane.pending or not lane.idle for lane in self.lanes):
                continue  # busy: no need to ask the database what is left
            horizon = utcnow() + timedelta(seconds=self.ctx.settings.idle_horizon_seconds)
            left = await self._database(
                "idle check", partial(anything_left, self.ctx.engine, due_by=horizon), True
            )
            if not left:
                later = await self._database(
                    "idle check", partial(due_later, self.ctx.engine, horizon), 0
                )
                self.counters.due_later = later
                if later:
                    log.warning("rows_left_for_later", rows=later, horizon_s=horizon.isoformat())
                log.info("queue_idle", due_later=later)
                self.stop.set()

    async def _shutdown(
        self, background: list[asyncio.Task[None]], heartbeat: asyncio.Task[None]
    ) -> None:
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
        try:
            for lane in self.lanes:
                await self._flush(lane)
                unfinished = sorted(lane.held)
                await lane.queue.release(self.owner, unfinished)
                if unfinished:
                    log.info("handed_back", lane=lane.name, rows=len(unfinished))
        except DB_ERRORS as exc:
            # Their leases will expire and another daemon (or the next start) takes them.
            log.error("database_error", during="shutdown", error=_scrubbed(exc))
        except StorageUnavailable as exc:  # rows not made durable are not recorded as stored
            log.error("storage_unavailable", during="shutdown", error=str(exc))
        finally:
            self.released.set()
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
            await self._probe.close()
        log.info("daemon_stopped", owner=self.owner, **self.counters.as_dict())


@contextlib.asynccontextmanager
async def _serving(daemon: Daemon, bind: str | None) -> AsyncIterator[None]:
    """`--http`: health for orchestrators (checked on an engine of its own), metrics and
    the dashboard."""
    if bind is None:
        yield
        return
    health_engine = create_engine(daemon.ctx.settings.database_url, pool_size=1)
    try:
        app = web.Application()
        add_health_routes(app, health_engine, daemon.snapshot)
        add_metrics_routes(app, daemon.metrics)
        settings = daemon.ctx.settings
        add_dashboard_routes(
            app,
            daemon.ctx.engine,
            settings.lease_seconds,
            token=settings.dashboard_token,
            tiles=settings.tile_template,
        )
        site = await serve(app, bind)
        log.info("http_serving", url=url_of(site))
        served = asyncio.Event()
        refresh = asyncio.create_task(daemon.metrics.refresh_loop(served))
        try:
            yield
        finally:
            served.set()
            await refresh
            await site.cleanup()
    finally:
        await health_engine.dispose()


async def _record(queue: Queue, owner: str, results: Sequence[Result]) -> dict[int, str]:
    """Write a batch's outcomes, then its failures; returns the state each row written was
    left in, by id (a row whose lease was lost is not there: it was not written)."""
    finished = await queue.finish(owner, [r for r in results if isinstance(r, Outcome)])
    return finished | await queue.fail(owner, [r for r in results if isinstance(r, Failure)])


async def _record_each(
    queue: Queue, owner: str, results: Sequence[Result]
) -> tuple[list[Result], dict[int, str]]:
    """A batch the database refused, written row by row: a row whose values it refuses
    fails alone, as bad_record, instead of the batch being tried for ever. Rows written
    before the refusal are not written twice (their leases ended)."""
    recorded: list[Result] = []
    left_as: dict[int, str] = {}
    for result in results:
        try:
            left_as.update(await _record(queue, owner, [result]))
        except RecordRefused as exc:
            error = f"the database refused this row's outcome: {redactor.redact(str(exc))}"
            result = Failure(result.id, error, retryable=False, reason=exc.reason)
            try:
                left_as.update(await queue.fail(owner, [result]))  # logged as it fails
            except RecordRefused:
                # Not even its failure is taken: the row is let go, not retried here for
                # ever; once its lease is out it goes back to the queue.
                log.error("outcome_refused", row_id=result.id)
        recorded.append(result)
    return recorded, left_as


def _scrubbed(exc: BaseException | None) -> str:
    """An exception as text fit for a log line or the database: no key, no token."""
    return redactor.redact(f"{type(exc).__name__}: {exc}")


async def _wait_for_any(*waits: Awaitable[Any]) -> None:
    """Wait until the first of several awaitables finishes; cancel the rest."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def require_writable(root: Path) -> None:
    """Fail at start, in one line, if images could not be written under the storage root."""
    try:
        LocalStorage(root).check_writable()
    except OSError as exc:
        raise DaemonError(
            f"cannot write under the storage root {root}: {exc.strerror or exc}; check "
            "--storage-root (HARVESTER_STORAGE_ROOT) and its permissions"
        ) from None


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
    for secret in settings.secrets:
        redactor.add(secret)
    if settings.storage_url is None:  # an object store is checked by its first write
        require_writable(settings.storage_root)
    # Until the daemon runs, a first signal gives up the start; from then on it drains.
    interrupts = Interrupts(_cancel(asyncio.current_task()))
    if handle_signals:
        interrupts.install()
    engine = create_engine(settings.database_url)
    try:
        await require_database(engine)
        await upgrade(engine)
        async with open_context(settings, engine) as ctx:
            swept = asyncio.create_task(asyncio.to_thread(ctx.storage.sweep_temp_files))
            daemon = Daemon(
                ctx, until_idle=until_idle, grace_seconds=grace_seconds, reporter=reporter
            )
            interrupts.on_first = daemon.stop.set
            async with _serving(daemon, http_bind):
                started = time.monotonic()
                counters = await daemon.run()
            with contextlib.suppress(Exception):
                removed = await swept
                if removed:
                    log.info("temp_files_swept", files=removed)
            counters.elapsed_s = time.monotonic() - started
            if until_idle:
                counters.blocked = await blocked_campaigns(engine)
            return counters
    except asyncio.CancelledError:
        if interrupts.received:
            raise KeyboardInterrupt from None  # the start given up: exit 130, no traceback
        raise
    finally:
        await engine.dispose()


def _cancel(task: asyncio.Task[Any] | None) -> Callable[[], None]:
    def cancel() -> None:
        if task is not None:
            task.cancel()

    return cancel
