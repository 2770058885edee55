"""A circuit breaker per API: while it is down for everyone, wait instead of failing.

Retries with back-off are sized for blips; an outage of minutes outlasts them, and
every row would burn its attempts on it and fail for good. The breaker watches the
outcomes of every call to one API: after `threshold` outage answers in a row with no
success in between (5xx, Flickr code 105, refused connections), it opens. While open,
callers wait in `admit`; one at a time, in arrival order, is let through as a probe at
growing intervals. The first answer that is not an outage closes it and everyone goes
on. A breaker open for longer than `max_pause_s` lets its callers fail as usual, so a
service that never comes back does not hold rows forever.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from typing import Any

import structlog

from harvester.http.errors import HttpError, ServiceUnavailableError
from harvester.http.limiter import Clock, SystemClock

log = structlog.get_logger("harvester.http")

THRESHOLD = 3


class CircuitBreaker:
    """Closed (calls flow), open (callers wait) or probing (one caller tries)."""

    def __init__(
        self,
        name: str,
        *,
        probe_after_s: float = 5.0,
        max_probe_interval_s: float = 60.0,
        max_pause_s: float = 3600.0,
        threshold: int = THRESHOLD,
        clock: Clock | None = None,
    ) -> None:
        if not (probe_after_s > 0 and max_probe_interval_s >= probe_after_s and threshold >= 1):
            raise ValueError("need probe_after_s > 0, max interval >= it and threshold >= 1")
        self.name = name
        self._clock: Clock = clock or SystemClock()
        self._first_interval = probe_after_s
        self._max_interval = max_probe_interval_s
        self._max_pause = max_pause_s
        self._threshold = threshold
        self._failures = 0
        self._opened_at: float | None = None
        self._interval = probe_after_s
        self._probe_at = 0.0
        self._probing = False
        self._tickets = itertools.count()
        self._waiting: deque[int] = deque()
        self._changed = asyncio.Event()
        self.opened = 0  # how many times it opened, for tests and logs

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    @property
    def holding(self) -> bool:
        """Open and not yet past `max_pause_s`: callers should wait, not give up."""
        if self._opened_at is None:
            return False
        return self._clock.monotonic() - self._opened_at < self._max_pause

    async def admit(self) -> bool:
        """Return when a call may be made; True when this caller is the probe."""
        if not self.holding:
            return False
        ticket = next(self._tickets)
        self._waiting.append(ticket)
        try:
            while self.holding:
                now = self._clock.monotonic()
                if not self._probing and self._waiting[0] == ticket and now >= self._probe_at:
                    self._probing = True
                    return True
                first = not self._probing and self._waiting[0] == ticket
                await self._wait(self._probe_at - now if first else None)
            return False
        finally:
            self._waiting.remove(ticket)
            self._notify()  # the next in line may be first now

    def record(self, error: BaseException | None, *, probe: bool) -> None:
        """The outcome of one call: None (success) or the error it ended with.

        Anything but an HTTP error (a cancellation, a bug) says nothing about the
        service; it only hands the probe on.
        """
        if probe:
            self._probing = False
        if isinstance(error, ServiceUnavailableError):
            self._failed()
        elif error is None or isinstance(error, HttpError):
            self._succeeded()  # the service answered, even if it said no
        self._notify()

    def _failed(self) -> None:
        now = self._clock.monotonic()
        self._failures += 1
        if self._opened_at is not None:
            self._interval = min(self._interval * 2, self._max_interval)
            self._probe_at = now + self._interval
        elif self._failures >= self._threshold:
            self._opened_at = now
            self._interval = self._first_interval
            self._probe_at = now + self._interval
            self.opened += 1
            log.warning("breaker_open", api=self.name, failures=self._failures)

    def _succeeded(self) -> None:
        if self._opened_at is not None:
            paused = self._clock.monotonic() - self._opened_at
            log.info("breaker_closed", api=self.name, paused_s=round(paused, 1))
        self._failures = 0
        self._opened_at = None

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait(self, seconds: float | None) -> None:
        waits: set[asyncio.Future[Any]] = {asyncio.ensure_future(self._changed.wait())}
        # Only the first in line sleeps on the clock (a fake clock moves for everyone);
        # the others wake when something changes.
        if seconds is not None:
            waits.add(asyncio.ensure_future(self._clock.sleep(max(0.0, seconds))))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()
