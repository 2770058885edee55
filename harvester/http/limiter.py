"""Rate limiting: a token bucket per API key (AIMD on 429) and per-host concurrency caps.

Time comes from an injectable ``Clock`` so that tests drive hours of traffic in
milliseconds and assert exact rates, without sleeping.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

# Float slack so that a waiter woken exactly when its token is due is not sent back
# to sleep for a rounding error.
_EPSILON = 1e-9


class Clock(Protocol):
    """Monotonic time and sleeping, injectable so tests need not wait."""

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock: ``time.monotonic`` and ``asyncio.sleep``."""

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class RateLimiter(Protocol):
    """What the HTTP client needs from a limiter (a later global, shared-database limiter
    can implement this too)."""

    async def acquire(self) -> None: ...

    def throttled(self, retry_after: float | None = None) -> None: ...

    def succeeded(self) -> None: ...


class TokenBucket:
    """Admit at most ``burst + rate * T`` calls in any window of ``T`` seconds.

    One bucket per API key. On a 429 (``throttled``) the rate halves, down to
    ``min_rate_per_s``, the bucket empties and, given a Retry-After, no call is admitted
    before it passes. Successes (``succeeded``) raise the rate linearly by
    ``recovery_per_s`` calls/s for every second since the last change, back to the
    configured rate: additive increase, multiplicative decrease, so a rate set too high
    settles below the server's limit instead of hammering it with 429s.

    Waiters are served in arrival order (they queue on an ``asyncio.Lock``). ``tokens``
    starts the bucket below a full burst: a new slice of a shared limit starts empty, so
    holders joining together do not each spend a burst at once.
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: float,
        *,
        clock: Clock | None = None,
        min_rate_per_s: float | None = None,
        recovery_per_s: float | None = None,
        tokens: float | None = None,
    ) -> None:
        if not (rate_per_s > 0 and math.isfinite(rate_per_s)):
            raise ValueError("rate_per_s must be a positive number")
        if not burst >= 1:
            raise ValueError("burst must be at least 1")
        min_rate = rate_per_s / 16 if min_rate_per_s is None else min_rate_per_s
        if not 0 < min_rate <= rate_per_s:
            raise ValueError("min_rate_per_s must be in (0, rate_per_s]")
        recovery = rate_per_s / 60 if recovery_per_s is None else recovery_per_s
        if not recovery > 0:
            raise ValueError("recovery_per_s must be positive")
        self._clock: Clock = clock or SystemClock()
        self._max_rate = float(rate_per_s)
        self._min_rate = float(min_rate)
        self._recovery = float(recovery)
        self._burst = float(burst)
        self._rate = self._max_rate
        self._tokens = self._burst if tokens is None else min(self._burst, tokens)
        now = self._clock.monotonic()
        self._updated = now
        self._paused_until = -math.inf
        self._last_change = now
        self._last_decrease = -math.inf
        self._lock = asyncio.Lock()

    @property
    def current_rate(self) -> float:
        """The rate (calls/s) admitted now, after any AIMD adjustment."""
        return self._rate

    @property
    def configured_rate(self) -> float:
        """The rate the bucket recovers to."""
        return self._max_rate

    async def acquire(self) -> None:
        """Wait until one call may be made, and take its token."""
        async with self._lock:
            while (wait := self.take(self._clock.monotonic())) > 0:
                await self._clock.sleep(wait)

    def take(self, now: float) -> float:
        """Take a token if one is due (0.0), else the seconds until one will be."""
        self._refill(now)
        if now < self._paused_until:
            return self._paused_until - now
        if self._tokens >= 1 - _EPSILON:
            self._tokens = max(0.0, self._tokens - 1)
            return 0.0
        return (1 - self._tokens) / self._rate

    def set_ceiling(self, rate_per_s: float, burst: float) -> None:
        """Change the configured rate (a new slice of a shared limit); an AIMD cut in force
        scales with it, and tokens beyond the new burst are dropped."""
        if not (rate_per_s > 0 and burst >= 1):
            raise ValueError("the ceiling needs a positive rate and a burst of at least 1")
        now = self._clock.monotonic()
        self._refill(now)
        scale = rate_per_s / self._max_rate
        self._max_rate = float(rate_per_s)
        self._min_rate *= scale
        self._recovery *= scale
        self._rate = min(self._max_rate, self._rate * scale)
        self._burst = float(burst)
        self._tokens = min(self._tokens, self._burst)

    def throttled(self, retry_after: float | None = None) -> None:
        """The server said 429: halve the rate, empty the bucket, pause for Retry-After."""
        now = self._clock.monotonic()
        self._refill(now)
        # Requests in flight together all come back 429 together; one halving per
        # cooldown keeps a single overload from collapsing the rate to the floor.
        if now - self._last_decrease >= self._decrease_cooldown():
            self._rate = max(self._min_rate, self._rate / 2)
            self._last_decrease = now
        self._tokens = 0.0
        self._last_change = max(now, self._paused_until)
        if retry_after is not None:
            self.pause(retry_after)

    def pause(self, seconds: float) -> None:
        """Admit nothing for ``seconds`` (a Retry-After), and recover only after it."""
        if not seconds > 0:
            return
        now = self._clock.monotonic()
        self._refill(now)
        self._paused_until = max(self._paused_until, now + seconds)
        self._last_change = max(self._last_change, self._paused_until)

    def succeeded(self) -> None:
        """A call went through: move the rate back toward the configured one."""
        now = self._clock.monotonic()
        self._refill(now)
        since = now - self._last_change
        if since > 0:
            self._rate = min(self._max_rate, self._rate + self._recovery * since)
            self._last_change = now

    def _decrease_cooldown(self) -> float:
        return max(1.0, 1.0 / self._rate)

    def _refill(self, now: float) -> None:
        # No tokens accrue during a Retry-After pause: the server asked for quiet, not
        # for a burst at its end.
        start = max(self._updated, self._paused_until)
        if now > start:
            self._tokens = min(self._burst, self._tokens + (now - start) * self._rate)
        self._updated = max(self._updated, now)


@dataclass
class _Slot:
    semaphore: asyncio.Semaphore
    users: int = field(default=0)


RateFor = Callable[[str], RateLimiter]
# Per-host rate limiters remembered at once; a URL list spanning more hosts forgets the
# least recently used (its slice, if shared, lapses within a lease).
MAX_HOST_RATES = 10_000


class HostSlots:
    """At most ``per_host`` requests in flight to any one host (politeness to CDNs), and,
    given ``rate_for``, a rate limit per host that slows down on the host's 429s.

    Entries for hosts nobody is using are dropped, so a URL list spanning millions of
    hosts does not grow this without bound.
    """

    def __init__(self, per_host: int, rate_for: RateFor | None = None) -> None:
        if per_host < 1:
            raise ValueError("per_host must be at least 1")
        self._per_host = per_host
        self._slots: dict[str, _Slot] = {}
        self._rate_for = rate_for
        self._rates: OrderedDict[str, RateLimiter] = OrderedDict()

    @property
    def per_host(self) -> int:
        return self._per_host

    def in_use(self, host: str) -> int:
        """How many callers hold or wait for a slot on this host."""
        entry = self._slots.get(host.lower())
        return 0 if entry is None else entry.users

    def rate(self, host: str) -> RateLimiter | None:
        """The host's rate limiter (made on first use), or None without per-host rates."""
        if self._rate_for is None:
            return None
        key = host.lower()
        limiter = self._rates.get(key)
        if limiter is None:
            limiter = self._rates[key] = self._rate_for(key)
            while len(self._rates) > MAX_HOST_RATES:
                self._rates.popitem(last=False)
        self._rates.move_to_end(key)
        return limiter

    @asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        """Hold one of the host's slots for the duration of the block, after its rate
        limiter (if any) admits the request."""
        key = host.lower()
        entry = self._slots.get(key)
        if entry is None:
            entry = self._slots[key] = _Slot(asyncio.Semaphore(self._per_host))
        entry.users += 1
        try:
            async with entry.semaphore:
                limiter = self.rate(key)
                if limiter is not None:
                    await limiter.acquire()
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._slots[key]
