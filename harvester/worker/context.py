"""Everything a job needs, built once per daemon and closed once."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import structlog

from harvester.config import Settings
from harvester.db.campaigns import campaign_settings
from harvester.db.catalog import known_licenses
from harvester.db.rate_shares import DatabaseRateShares
from harvester.db.session import Engine
from harvester.db.throttle_notices import ThrottleListener
from harvester.http import HttpClient
from harvester.http.shared import SharedRates, SplitShares
from harvester.imaging import SizeRules
from harvester.log import current_level
from harvester.sources.base import Source
from harvester.sources.registry import build_sources
from harvester.sources.settings import CampaignSettings, read_stored
from harvester.storage.base import Storage
from harvester.storage.open import open_storage
from harvester.worker.duplicates import StoredBytes
from harvester.worker.fetching import (
    RATE_GIVE_BACK,
    RATE_TAKE,
    SAME_BYTES,
    http_settings,
    portable,
    refresh_rate,
    worker_service,
)
from harvester.worker.owner import new_owner
from harvester.worker.pool import ImagePool
from harvester.worker.window import Window

log = structlog.get_logger("harvester.worker")

# Source hashes remembered to catch duplicates processed at the same time (~100 bytes each).
RECENT_HASHES = 50_000


@dataclass
class Context:
    settings: Settings
    engine: Engine
    http: HttpClient
    sources: dict[str, Source]
    storage: Storage
    pool: ImagePool
    stored_bytes: StoredBytes
    window: Window
    rate_shares: DatabaseRateShares
    _campaigns: dict[int, dict[str, Any]] = field(default_factory=dict)
    _reading: asyncio.Future[dict[int, dict[str, Any]]] | None = None  # the one read under way
    _bytes_owner: OrderedDict[str, int] = field(default_factory=OrderedDict)
    _asked: dict[int, str] = field(default_factory=dict)  # image id -> bytes it claimed
    _rules: dict[int, tuple[Mapping[str, Any], SizeRules]] = field(default_factory=dict)
    _licenses_seen: set[tuple[str, tuple[str, ...]]] = field(default_factory=set)
    _licenses: dict[tuple[str, str], tuple[str, str | None] | None] = field(default_factory=dict)

    async def same_bytes(self, source_sha: str, image_id: int) -> int | None:
        """A worker asks, before writing: the image already stored (or being stored) with
        these source bytes, else None, and these bytes are this image's until it ends."""
        original = self.same_bytes_in_flight(source_sha, image_id)
        if original is None:
            self._asked[image_id] = source_sha
            original = await self.stored_bytes.stored_as(source_sha, image_id)
        if original is not None:
            self.done_with_bytes(source_sha, image_id)
        return original

    def asked_done(self, image_id: int, *, stored: bool) -> None:
        """The image's job ended: bytes it claimed stay claimed only if it was stored."""
        source_sha = self._asked.pop(image_id, None)
        if source_sha is not None and not stored:
            self.done_with_bytes(source_sha, image_id)

    def same_bytes_in_flight(self, source_sha: str, image_id: int) -> int | None:
        """The image already holding these source bytes in this daemon, else claim them."""
        owner = self._bytes_owner.setdefault(source_sha, image_id)
        self._bytes_owner.move_to_end(source_sha)
        while len(self._bytes_owner) > RECENT_HASHES:
            self._bytes_owner.popitem(last=False)
        return None if owner == image_id else owner

    def done_with_bytes(self, source_sha: str, image_id: int) -> None:
        if self._bytes_owner.get(source_sha) == image_id:
            del self._bytes_owner[source_sha]

    def new_licenses(self, provider: str, licenses: Sequence[tuple[str, str, str | None]]) -> bool:
        key = (provider, tuple(sorted(f"{i}|{n}|{u}" for i, n, u in licenses)))
        if key in self._licenses_seen:
            return False
        self._licenses_seen.add(key)
        return True

    def source_for_kind(self, kind: str) -> Source | None:
        return next((s for s in self.sources.values() if kind in s.kinds), None)

    async def campaign(self, campaign_id: int) -> Mapping[str, Any]:
        if campaign_id not in self._campaigns:
            joined = self._reading is not None
            await self._read_campaigns()
            if joined and campaign_id not in self._campaigns:
                # The read it joined may have begun before this campaign was made: without
                # a read of its own, its images would be sized by the defaults ({}).
                await self._read_campaigns()
        return self._campaigns.get(campaign_id, {})

    async def _read_campaigns(self) -> None:
        """Jobs that find a campaign they do not know share one read: the first claim of a
        new campaign starts a window of them at once, and each read its own (32 reads)."""
        if self._reading is None:
            reading = asyncio.ensure_future(campaign_settings(self.engine))
            reading.add_done_callback(self._read_ended)
            self._reading = reading
        # Shielded: one waiter given up on (cancelled) does not cancel the others' read.
        self._campaigns = await asyncio.shield(self._reading)

    def _read_ended(self, reading: asyncio.Future[dict[int, dict[str, Any]]]) -> None:
        self._reading = None  # a failed read is tried again by the next job that asks
        if not reading.cancelled():
            reading.exception()  # its waiters have it; nobody else must be told

    async def size_rules(self, campaign_id: int) -> SizeRules:
        """Validated once per campaign settings read, not once per image."""
        settings = await self.campaign(campaign_id)
        known = self._rules.get(campaign_id)
        if known is None or known[0] is not settings:
            what = f"campaign {campaign_id} settings"
            known = (settings, read_stored(CampaignSettings, settings, what).size_rules())
            self._rules[campaign_id] = known
        return known[1]

    async def license(self, provider: str, license_id: str | None) -> tuple[str, str | None] | None:
        if license_id is None:
            return None
        key = (provider, license_id)
        if key not in self._licenses:
            await self.reload_licenses()
            self._licenses.setdefault(key, None)  # unknown ids are not looked up per image
        return self._licenses[key]

    async def reload_licenses(self) -> None:
        self._licenses = dict(await known_licenses(self.engine))

    def forget_licenses(self) -> None:
        self._licenses.clear()


class ThrottleNotices:
    """What the daemon does when it hears that a key was cut elsewhere (PostgreSQL only):
    its own limiter of the key renews at once, and so does each worker's, through one
    renewal of the slice they split."""

    def __init__(self, shared: SharedRates, split: SplitShares, pool: ImagePool) -> None:
        self._shared = shared
        self._split = split
        self._pool = pool
        self._telling: set[asyncio.Task[None]] = set()

    def heard(self, key: str) -> None:
        self._shared.refresh(key)
        if self._split.holds(key):
            self._split.refresh(key)
            telling = asyncio.ensure_future(self._pool.each(refresh_rate, key))
            self._telling.add(telling)
            telling.add_done_callback(self._told)

    def _told(self, telling: asyncio.Task[None]) -> None:
        self._telling.discard(telling)
        if not telling.cancelled() and telling.exception() is not None:
            # A worker that died is replaced with a fresh renewal of its own; nothing is lost.
            log.warning("rate_notice_not_passed_on", error=type(telling.exception()).__name__)

    @asynccontextmanager
    async def listening(self, engine: Engine) -> AsyncIterator[ThrottleListener | None]:
        listener = ThrottleListener.of(engine, self.heard)
        task = None if listener is None else asyncio.create_task(listener.run(), name="notices")
        if task is not None:
            task.add_done_callback(_listener_ended)
        try:
            yield listener
        finally:
            running = [t for t in (task, *self._telling) if t is not None]
            for each in running:
                each.cancel()
            await asyncio.gather(*running, return_exceptions=True)


def _listener_ended(task: asyncio.Task[None]) -> None:
    """Renewals still carry every cut, only later; so the daemon goes on, but says so."""
    if not task.cancelled() and task.exception() is not None:
        log.error("rate_listener_crashed", error=type(task.exception()).__name__)


@asynccontextmanager
async def open_context(settings: Settings, engine: Engine) -> AsyncIterator[Context]:
    # Every limit is shared through the database with whoever else uses the key or host:
    # the daemon's own calls, and its workers', which share one slice leased by the daemon.
    shares = DatabaseRateShares(engine, settings.rate_share_lease_seconds)
    # Holders named as lease owners are: the next start on this host can tell they died.
    shared = SharedRates(shares, holder=new_owner())
    # One slice per key for all the workers.
    split = SplitShares(shares, settings.processes, holder=new_owner())
    storage = open_storage(settings)
    stored_bytes = StoredBytes(engine)
    pool = ImagePool(
        settings.processes,
        settings.image_timeout_seconds,
        setup=partial(worker_service, portable(settings), current_level()),
    )
    try:
        async with HttpClient(http_settings(settings)) as http:
            ctx = Context(
                settings=settings,
                engine=engine,
                http=http,
                sources=build_sources(settings, http, shared),
                storage=storage,
                pool=pool,
                stored_bytes=stored_bytes,
                window=Window(settings.processes, pool.depth, settings.concurrency),
                rate_shares=shares,
            )
            pool.answers.update(
                {
                    SAME_BYTES: ctx.same_bytes,
                    RATE_TAKE: split.take,
                    RATE_GIVE_BACK: split.give_back,
                }
            )
            try:
                await pool.start()
                async with ThrottleNotices(shared, split, pool).listening(engine):
                    yield ctx
            finally:
                await pool.close()
    finally:
        await stored_bytes.close()
        await split.close()
        await shared.close()
        await storage.close()
