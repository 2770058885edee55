"""One rate limit shared by many processes: each holds a leased slice, its bucket the fast path.

A limit such as a Flickr key's 3,600 calls an hour belongs to the key, not to a process.
Every process that calls with the key (daemons on several hosts, the worker processes of
one daemon) asks a ``RateShares`` store for a slice of the rate; the store grants at most
an equal share and never more than the others leave free, so the slices of live holders
add up to at most the limit. A slice is a lease: the holder renews it every third of a
lease, and one that dies stops counting when its lease runs out. Between renewals the
local token bucket admits calls at the slice's rate without asking anyone, with AIMD on
429 as before.

A 429 means the whole key is over its limit, not one holder's slice: the holder that gets
one halves its own rate at once and reports it with its next renewal (brought forward, at
most once a renewal interval), and the store keeps it with the key. Every other holder
learns of it at its own next renewal and halves too, and sits out what is left of a
Retry-After short enough to wait inline. Where the store can say so at once (PostgreSQL's
NOTIFY), ``refresh`` brings that renewal forward: one renewal in flight per key, however
many notices arrive. No call asks the store; a store that cannot be
reached leaves every holder with its own local reaction. The store (the database, in
``harvester.db.rate_shares``) is plugged in through the Protocol, so this module knows no SQL.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Protocol

import structlog

from harvester.errors import HarvesterError
from harvester.http.limiter import Clock, SystemClock, TokenBucket

log = structlog.get_logger("harvester.http")

# How soon a holder with no slice (the others hold the whole rate) asks again; the others
# shrink to an equal share at their next renewal, a third of a lease at most.
RETRY_EMPTY_S = 1.0
# Stop using a slice a little before the store frees it: the two clocks are not one.
LEASE_SAFETY = 0.9


class SharesUnavailable(HarvesterError):
    """The store of slices could not be reached; the last slice holds until its lease ends."""

    reason = "unavailable"


@dataclass(frozen=True)
class Slice:
    """A grant: ``rate`` calls/s for ``lease_s`` seconds from when it was asked for.

    ``cut`` names the key's latest 429 cut still in force (the store's time of it, as a
    POSIX timestamp), so each holder halves once per cut; ``pause_s`` is what is left of
    the key's shared Retry-After pause.
    """

    rate: float
    lease_s: float
    pause_s: float = 0.0
    cut: float | None = None


@dataclass(frozen=True)
class Throttle:
    """A 429 a holder got on the key since its last renewal, for the store to share.

    ``pause_s``: what is left of a Retry-After every holder may sit out inline (0 for
    none, or for one too long: that is the row's to honour, never the key's).
    """

    pause_s: float = 0.0


class RateShares(Protocol):
    """Where slices of shared limits are leased (the database, or a test's fake)."""

    async def take(
        self, key: str, holder: str, total_rate: float, throttle: Throttle | None = None
    ) -> Slice: ...

    async def give_back(self, key: str, holder: str) -> None: ...


def grant(total_rate: float, others: Sequence[float]) -> float:
    """A holder's slice: an equal share, but never more than the other live slices leave free,
    so the sum of live slices never exceeds the limit whoever joins or dies."""
    return max(0.0, min(total_rate / (len(others) + 1), total_rate - sum(others)))


def new_holder() -> str:
    """A holder name unique to this process (and this call), readable by operators."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class SharedRate:
    """A ``RateLimiter`` whose rate is this holder's slice of ``total_rate`` under ``key``.

    ``burst`` is the limit's burst; a slice carries its share of it (at least one call).
    """

    def __init__(
        self,
        key: str,
        total_rate: float,
        burst: float,
        shares: RateShares,
        *,
        holder: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not total_rate > 0:
            raise ValueError("total_rate must be positive")
        self.key = key
        self.holder = holder or new_holder()
        self._total = float(total_rate)
        self._burst = float(burst)
        self._shares = shares
        self._clock: Clock = clock or SystemClock()
        self._bucket: TokenBucket | None = None
        self._slice_rate = 0.0
        self._expires = -float("inf")
        self._renew_at = -float("inf")
        self._lock = asyncio.Lock()  # callers waiting for a call, in arrival order
        self._renewing = asyncio.Lock()  # one renewal at a time: an acquire's or a refresh's
        self._refreshing: asyncio.Task[None] | None = None
        self._refresh_again = False
        self._lease_s = 0.0
        # A 429 not yet told to the store: until when its pause runs (monotonic), or None.
        self._unreported: float | None = None
        self._reported_at = -float("inf")
        self._seen_cut: float | None = None

    @property
    def slice_rate(self) -> float:
        """The rate this holder may use now (0 before its first grant or after a lapse)."""
        return self._slice_rate if self._clock.monotonic() < self._expires else 0.0

    @property
    def current_rate(self) -> float:
        """The rate admitted now: the slice, after any AIMD cut."""
        if self._bucket is None or self.slice_rate == 0:
            return 0.0
        return self._bucket.current_rate

    async def acquire(self) -> None:
        """Wait until this holder's slice admits one call, renewing the slice when due."""
        async with self._lock:
            while True:
                now = self._clock.monotonic()
                if now >= self._renew_at:
                    async with self._renewing:
                        now = self._clock.monotonic()
                        if now >= self._renew_at:  # unless a refresh renewed meanwhile
                            await self._renew(now)
                    now = self._clock.monotonic()
                if self._bucket is not None and now < self._expires:
                    wait = self._bucket.take(now)
                    if wait == 0:
                        return
                    wait = min(wait, self._renew_at - now)
                else:
                    wait = self._renew_at - now
                await self._clock.sleep(max(wait, 1e-6))

    def throttled(self, retry_after: float | None = None) -> None:
        """A 429 on the key: slow down here at once, and tell the other holders through
        the store at the next acquire (no sooner than a renewal interval after the last
        report: the store counts one overload per interval anyway)."""
        if self._bucket is not None:
            self._bucket.throttled(retry_after)
        now = self._clock.monotonic()
        until = now + (retry_after or 0.0)
        self._unreported = until if self._unreported is None else max(self._unreported, until)
        self._renew_at = min(self._renew_at, max(now, self._reported_at + self._lease_s / 3))

    def succeeded(self) -> None:
        if self._bucket is not None:
            self._bucket.succeeded()

    def refresh(self) -> None:
        """Another holder's 429 cut the key: renew the slice now, not at the next renewal.
        Notices that arrive while one renewal is under way make one more after it (that one
        may have read the store before the cut), never one each."""
        if self._clock.monotonic() >= self._expires:
            # No slice yet (its first acquire asks), given back, or lapsed with no call since:
            # renewing one nobody calls with would hold a share of the key for a lease.
            return
        if self._refreshing is not None:
            self._refresh_again = True
            return
        self._refreshing = asyncio.ensure_future(self._refresh())

    async def _refresh(self) -> None:
        try:
            again = True
            while again:
                self._refresh_again = False
                async with self._renewing:
                    await self._renew(self._clock.monotonic())
                again = self._refresh_again
        finally:
            self._refreshing = None

    async def close(self) -> None:
        """Give the slice back at once, so the others need not wait for its lease to end."""
        if self._refreshing is not None:
            self._refreshing.cancel()
            await asyncio.gather(self._refreshing, return_exceptions=True)
        if self._expires == -float("inf"):
            return
        self._expires = self._renew_at = -float("inf")
        self._slice_rate = 0.0
        try:
            await self._shares.give_back(self.key, self.holder)
        except SharesUnavailable as exc:
            log.warning("rate_share_not_returned", key=self.key, error=str(exc))

    async def _renew(self, asked_at: float) -> None:
        unreported = self._unreported
        throttle = None if unreported is None else Throttle(max(0.0, unreported - asked_at))
        try:
            grant = await self._shares.take(self.key, self.holder, self._total, throttle)
        except SharesUnavailable as exc:
            # Keep what we have until its lease ends (and the 429 to report); ask again shortly.
            log.warning("rate_share_unavailable", key=self.key, error=str(exc))
            self._renew_at = self._clock.monotonic() + RETRY_EMPTY_S
            return
        if throttle is not None:
            self._reported_at = asked_at
            if self._unreported == unreported:  # no newer 429 while the store answered
                self._unreported = None
        self._lease_s = grant.lease_s
        self._expires = asked_at + grant.lease_s * LEASE_SAFETY
        self._renew_at = asked_at + grant.lease_s / 3
        if grant.rate <= 0:
            self._slice_rate = 0.0
            self._renew_at = min(self._renew_at, asked_at + RETRY_EMPTY_S)
            return
        self._slice_rate = grant.rate
        burst = max(1.0, self._burst * grant.rate / self._total)
        if self._bucket is None:
            self._bucket = TokenBucket(grant.rate, burst, clock=self._clock, tokens=0.0)
        else:
            self._bucket.set_ceiling(grant.rate, burst)
        self._follow(self._bucket, grant, reported=throttle is not None)

    def _follow(self, bucket: TokenBucket, grant: Slice, *, reported: bool) -> None:
        """Slow down for the key's 429s that other holders got (ours is applied already)."""
        if grant.cut is not None and grant.cut != self._seen_cut:
            self._seen_cut = grant.cut
            if not reported:
                log.info("rate_key_throttled", key=self.key, pause_s=grant.pause_s)
                bucket.throttled(grant.pause_s)
                return
        bucket.pause(grant.pause_s)


class SplitShares:
    """A ``RateShares`` for the worker processes of one daemon: the daemon leases one slice
    per key under its own name, and each of its ``parts`` workers gets an equal part of it.

    Workers asking the store each for a slice of their own would start unequal: the first
    takes the whole rate and the next gets nothing until the first renews (a third of a
    lease). One holder per daemon keeps the database's view the same as with one process.
    """

    def __init__(self, shares: RateShares, parts: int, *, holder: str | None = None) -> None:
        self._shares = shares
        self._parts = max(1, parts)
        self._holder = holder or new_holder()
        self._keys: set[str] = set()
        self._taking: dict[str, asyncio.Future[Slice]] = {}

    def holds(self, key: str) -> bool:
        return key in self._keys

    async def take(
        self, key: str, holder: str, total_rate: float, throttle: Throttle | None = None
    ) -> Slice:
        """Workers renewing together (a notice refreshes them all at once) share one
        renewal of the daemon's slice; one with a 429 to report asks on its own."""
        if throttle is not None:
            granted = await self._shares.take(key, self._holder, total_rate, throttle)
        else:
            taking = self._taking.get(key)
            if taking is None:
                taking = asyncio.ensure_future(self._shares.take(key, self._holder, total_rate))
                self._taking[key] = taking
                taking.add_done_callback(partial(self._taken, key))
            granted = await asyncio.shield(taking)
        self._keys.add(key)
        return replace(granted, rate=granted.rate / self._parts)

    def refresh(self, key: str) -> None:
        """A notice of a new cut: a renewal begun before it is not joined any more."""
        self._taking.pop(key, None)

    def _taken(self, key: str, taking: asyncio.Future[Slice]) -> None:
        if self._taking.get(key) is taking:
            del self._taking[key]
        if not taking.cancelled():
            taking.exception()  # its waiters have it

    async def give_back(self, key: str, holder: str) -> None:
        """A worker's part lapses with the daemon's slice, which `close` gives back."""

    async def close(self) -> None:
        keys, self._keys = sorted(self._keys), set()
        for key in keys:
            try:
                await self._shares.give_back(key, self._holder)
            except SharesUnavailable as exc:
                log.warning("rate_share_not_returned", key=key, error=str(exc))


class SharedRates:
    """Makes ``SharedRate`` limiters over one store (one per key), and gives their slices
    back at close. The least recently made beyond ``MAX_KEYS`` are forgotten: their slices
    lapse within a lease."""

    MAX_KEYS = 10_000

    def __init__(
        self, shares: RateShares, *, holder: str | None = None, clock: Clock | None = None
    ) -> None:
        self._shares = shares
        self._clock = clock
        self._holder = holder or new_holder()
        self._made: OrderedDict[str, SharedRate] = OrderedDict()

    def limiter(self, key: str, total_rate: float, burst: float) -> SharedRate:
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = SharedRate(
                key, total_rate, burst, self._shares, holder=self._holder, clock=self._clock
            )
            while len(self._made) > self.MAX_KEYS:
                self._made.popitem(last=False)
        self._made.move_to_end(key)
        return made

    def refresh(self, key: str) -> None:
        """The key was cut elsewhere: its limiter here (if any) renews at once."""
        made = self._made.get(key)
        if made is not None:
            made.refresh()

    async def close(self) -> None:
        made, self._made = list(self._made.values()), OrderedDict()
        await asyncio.gather(*(limiter.close() for limiter in made))


__all__ = [
    "RateShares",
    "SharedRate",
    "SharedRates",
    "SharesUnavailable",
    "Slice",
    "SplitShares",
    "Throttle",
    "grant",
    "new_holder",
]
