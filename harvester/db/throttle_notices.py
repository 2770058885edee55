"""A key throttled anywhere is heard everywhere at once, through PostgreSQL's LISTEN/NOTIFY.

Renewals alone tell the other holders of a key about a 429 within a third of a lease (10 s by
default), and meanwhile they keep calling at the rate that drew it. So the renewal that
records a new cut also NOTIFYs ``CHANNEL`` with the key's name (a limit's name: a hash of a
credential or a host name, never a secret), delivered when it commits, and every daemon
LISTENs on a connection of its own and renews that key's slice as soon as it hears.

The notice only brings a renewal forward: a listener that is down (the database restarting,
the network cut) costs latency, never correctness. It reconnects on its own, pinging to
notice a connection the network dropped silently, and says once that it is lost and once
that it is back. SQLite (one host) has no listener; its worker processes share slices
through the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import asyncpg
import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from harvester.backoff import EQUAL_JITTER, Backoff
from harvester.db.session import RAW_DRIVER_ERRORS

log = structlog.get_logger("harvester.db")

CHANNEL = "harvester_rate_throttled"
RECONNECT = Backoff(0.5, 30.0, EQUAL_JITTER)
# A connection the network dropped without a word shows up within a ping and its timeout.
PING_EVERY_S = 15.0
PING_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 10.0
# What SQLAlchemy's asyncpg adapter takes from the URL for itself: not asyncpg.connect's.
ADAPTER_OPTIONS = frozenset(
    {"async_creator_fn", "prepared_statement_cache_size", "prepared_statement_name_func"}
)


async def notify_throttled(connection: AsyncConnection, key: str) -> None:
    """Tell every listener, when this transaction commits, that ``key`` was cut."""
    if connection.dialect.name == "postgresql":
        await connection.execute(
            text("SELECT pg_notify(:channel, :key)"), {"channel": CHANNEL, "key": key}
        )


class ThrottleListener:
    """Calls ``on_key(key)`` for each key throttled by any daemon, until cancelled (``run``)."""

    def __init__(
        self,
        engine: AsyncEngine,
        on_key: Callable[[str], None],
        *,
        reconnect: Backoff = RECONNECT,
        ping_every_s: float = PING_EVERY_S,
    ) -> None:
        args, kwargs = engine.dialect.create_connect_args(engine.url)
        options = {name: value for name, value in kwargs.items() if name not in ADAPTER_OPTIONS}
        self._connect_args: tuple[list[Any], dict[str, Any]] = (list(args), options)
        self._on_key = on_key
        self._reconnect = reconnect
        self._ping_every_s = ping_every_s
        self.listening = asyncio.Event()  # set while a connection LISTENs (for tests)
        self.backend_pid: int | None = None
        self._answered = False  # whether the connection listening now has answered a ping

    @classmethod
    def of(cls, engine: AsyncEngine, on_key: Callable[[str], None]) -> ThrottleListener | None:
        """A listener on PostgreSQL; None on SQLite, where there is nobody else to tell."""
        return cls(engine, on_key) if engine.dialect.name == "postgresql" else None

    async def run(self) -> None:
        delays = self._reconnect.delays()
        lost = False
        while True:
            try:
                connection = await self._connect()
            except (*RAW_DRIVER_ERRORS, TimeoutError) as exc:
                if not lost:
                    log.warning("rate_listener_lost", error=_problem(exc))
                    lost = True
                await asyncio.sleep(next(delays))
                continue
            if lost:
                log.info("rate_listener_back")
                lost = False
            self._answered = False
            try:
                await self._listen(connection)
            except (*RAW_DRIVER_ERRORS, TimeoutError) as exc:
                log.warning("rate_listener_lost", error=_problem(exc))
                lost = True
            finally:
                self.listening.clear()
                self.backend_pid = None
                connection.terminate()
            if self._answered:  # it was up: reconnect at once, a new outage backs off afresh
                delays = self._reconnect.delays()
            else:  # ended before its first ping (a standby, a pooler, a killer): no storm
                await asyncio.sleep(next(delays))

    async def _connect(self) -> Any:
        args, kwargs = self._connect_args
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for drops a cancellation that
        # lands as the connect completes, and the daemon's shutdown would wait for ever.
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            return await asyncpg.connect(*args, **kwargs)

    async def _listen(self, connection: Any) -> None:
        """LISTEN until the connection ends (raises) or stops answering pings."""
        ended = asyncio.Event()
        connection.add_termination_listener(lambda _connection: ended.set())
        await connection.add_listener(CHANNEL, self._notified)
        self.backend_pid = connection.get_server_pid()
        self.listening.set()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._ping_every_s):
                    await ended.wait()
            if ended.is_set():
                raise ConnectionError("the listening connection was closed")
            async with asyncio.timeout(PING_TIMEOUT_S):
                await connection.execute("SELECT 1")
            self._answered = True

    def _notified(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        self._on_key(payload)


def _problem(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
