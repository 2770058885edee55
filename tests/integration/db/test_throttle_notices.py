"""A 429 one daemon reports reaches the other daemons' limiters of the key at once, through
PostgreSQL's NOTIFY, not at their next renewal: with a lease of an hour (a renewal every
20 minutes) only the notice can explain the other holder slowing down within seconds."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs
from tcp_proxy import in_front_of

from harvester.backoff import Backoff
from harvester.db.migrate import upgrade
from harvester.db.rate_shares import DatabaseRateShares
from harvester.db.session import create_engine
from harvester.db.throttle_notices import CHANNEL, ThrottleListener
from harvester.http.shared import SharedRate, SharedRates, Slice, Throttle

KEY = "flickr:0123456789abcdef"
RATE = 100.0  # calls/s for the key: 50 each for two holders
LEASE = 3600.0  # renewals 20 minutes apart: nothing in these tests waits for one
FAST = Backoff(0.05, 0.2)  # the listener's reconnect back-off, shortened for the test
PROMPTLY_S = 10.0  # a deadline for what takes milliseconds, not a measured time


async def eventually(condition: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(PROMPTLY_S):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)  # polled: what it waits for is in another connection
    raise AssertionError(what)


@dataclass
class Daemons:
    """Two daemons' limiters of one key (a and b), each daemon on its own engine, and b's
    listener wired as the daemon wires it: a notice refreshes b's limiter of the key."""

    a: SharedRate
    b: SharedRate
    listener: ThrottleListener
    counted: Counted

    @property
    def renewals(self) -> int:
        """b's renewals since the listener started."""
        return self.counted.takes


class Counted(DatabaseRateShares):
    """The store, counting renewals."""

    takes = 0

    async def take(
        self, key: str, holder: str, total_rate: float, throttle: Throttle | None = None
    ) -> Slice:
        self.takes += 1
        return await super().take(key, holder, total_rate, throttle)


@asynccontextmanager
async def two_daemons(a_engine: AsyncEngine, b_engine: AsyncEngine) -> AsyncIterator[Daemons]:
    a_store = DatabaseRateShares(a_engine, LEASE)
    b_store = Counted(b_engine, LEASE)
    b_rates = SharedRates(b_store)
    a = SharedRate(KEY, RATE, 1, a_store, holder="a")
    b = b_rates.limiter(KEY, RATE, 1)
    # The table as two settled holders leave it: half the key each (a joins first, whole).
    await a_store.take(KEY, "a", RATE)
    await b_store.take(KEY, b.holder, RATE)
    await a.acquire()
    await b.acquire()
    assert a.slice_rate == b.slice_rate == RATE / 2
    listener = ThrottleListener(b_engine, b_rates.refresh, reconnect=FAST)
    listening = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.listening.wait(), PROMPTLY_S)
        b_store.takes = 0
        yield Daemons(a, b, listener, b_store)
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)
        await b_rates.close()
        await a.close()


@pytest.fixture
async def engines(postgres_url: str) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    a_engine, b_engine = create_engine(postgres_url), create_engine(postgres_url)
    try:
        await upgrade(a_engine)
        yield a_engine, b_engine
    finally:
        await a_engine.dispose()
        await b_engine.dispose()


@pytest.fixture
async def daemons(engines: tuple[AsyncEngine, AsyncEngine]) -> AsyncIterator[Daemons]:
    async with two_daemons(*engines) as pair:
        yield pair


async def a_gets_429(daemons: Daemons) -> None:
    daemons.a.throttled(None)  # a halves at once and reports with its next acquire
    assert daemons.a.current_rate == pytest.approx(RATE / 4)
    await daemons.a.acquire()


async def test_a_429_reported_by_one_daemon_halves_the_others_rate_at_once(
    daemons: Daemons,
) -> None:
    assert daemons.b.current_rate == pytest.approx(RATE / 2)
    await a_gets_429(daemons)
    # b's renewal is 20 minutes off: only the notice can have brought it forward
    await eventually(lambda: daemons.b.current_rate < RATE / 2, "b never heard of a's 429")
    assert daemons.b.current_rate == pytest.approx(RATE / 4)
    assert daemons.b.slice_rate == pytest.approx(RATE / 2)  # the slice stays: the cut is AIMD's


async def test_a_killed_listening_connection_reconnects_and_still_hears(
    daemons: Daemons, postgres_url: str
) -> None:
    killed = daemons.listener.backend_pid
    assert killed is not None
    with capture_logs() as logs:
        admin = await asyncpg.connect(make_url(postgres_url).render_as_string(False))
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", killed)
        finally:
            await admin.close()
        await eventually(
            lambda: daemons.listener.backend_pid not in (None, killed), "never reconnected"
        )
    events = [entry["event"] for entry in logs]
    assert events == ["rate_listener_lost", "rate_listener_back"]
    await a_gets_429(daemons)
    await eventually(lambda: daemons.b.current_rate < RATE / 2, "b never heard of a's 429")


async def test_a_listener_cut_off_for_long_says_so_once_and_hears_again_when_back(
    postgres_url: str,
) -> None:
    proxy, proxied = await in_front_of(postgres_url)
    a_engine, b_engine = create_engine(postgres_url), create_engine(proxied)
    try:
        await upgrade(a_engine)
        async with two_daemons(a_engine, b_engine) as daemons:
            with capture_logs() as logs:
                proxy.cut()  # b's database is out of reach: every reconnect fails at once
                await eventually(lambda: not daemons.listener.listening.is_set(), "still on")
                lost = 0
                while lost < 20:  # many failed reconnects (a back-off of 0.2 s at most)
                    await asyncio.sleep(0.05)
                    lost += 1
                proxy.restore()
                await asyncio.wait_for(daemons.listener.listening.wait(), PROMPTLY_S)
            events = [entry["event"] for entry in logs]
            assert events == ["rate_listener_lost", "rate_listener_back"]
            await a_gets_429(daemons)
            await eventually(lambda: daemons.b.current_rate < RATE / 2, "b never heard")
    finally:
        await a_engine.dispose()
        await b_engine.dispose()
        await proxy.close()


@dataclass(frozen=True)
class Recorded(Backoff):
    """A back-off that notes each wait it hands out."""

    waits: list[float] = field(default_factory=list)

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        for delay in super().delays(rng):
            self.waits.append(delay)
            yield delay


async def test_a_listener_whose_connections_die_at_once_backs_off_instead_of_storming(
    postgres_url: str,
) -> None:
    # The server takes each connection and ends it at once (here: any idle session after
    # 20 ms; a standby refusing LISTEN, a pooler or a killing script do the same).
    name = make_url(postgres_url).database
    admin = await asyncpg.connect(make_url(postgres_url).render_as_string(False))
    try:
        await admin.execute(f'ALTER DATABASE "{name}" SET idle_session_timeout = 20')
    finally:
        await admin.close()
    engine = create_engine(postgres_url)
    reconnect = Recorded(0.01, 0.08)
    listener = ThrottleListener(engine, print, reconnect=reconnect)
    try:
        with capture_logs() as logs:
            listening = asyncio.create_task(listener.run())
            try:
                await eventually(
                    lambda: sum(e["event"] == "rate_listener_back" for e in logs) >= 5,
                    "the listener stopped reconnecting",
                )
            finally:
                listening.cancel()
                await asyncio.gather(listening, return_exceptions=True)
    finally:
        await engine.dispose()
    # every reconnect waited, and the waits grew: a connection that never answered a ping
    # does not start the back-off afresh
    assert len(reconnect.waits) >= 5
    assert reconnect.waits[:4] == [0.01, 0.02, 0.04, 0.08]


async def test_429s_in_a_burst_are_one_notice_and_notices_in_a_burst_one_renewal(
    daemons: Daemons, engines: tuple[AsyncEngine, AsyncEngine]
) -> None:
    heard: list[str] = []
    counted = ThrottleListener(engines[0], heard.append, reconnect=FAST)
    counting = asyncio.create_task(counted.run())
    try:
        await asyncio.wait_for(counted.listening.wait(), PROMPTLY_S)
        for _ in range(50):  # a's calls in flight all come back 429 together
            daemons.a.throttled(None)
        await daemons.a.acquire()
        await eventually(lambda: daemons.b.current_rate < RATE / 2, "b never heard")
        await eventually(lambda: daemons.b._refreshing is None, "b still renewing")
        assert daemons.renewals == 1
        # another holder's 429 from the same overload joins a's cut: nobody is told again
        c_store = DatabaseRateShares(engines[0], LEASE)
        await c_store.take(KEY, "c", RATE, Throttle())
        await c_store.give_back(KEY, "c")
        # notices heard many times over (a storm of them) make one renewal, not one each
        for _ in range(50):
            daemons.b.refresh()
        await eventually(lambda: daemons.b._refreshing is None, "b still renewing")
    finally:
        counting.cancel()
        await asyncio.gather(counting, return_exceptions=True)
    assert heard == [KEY]
    assert daemons.renewals == 2  # all 50 came before it began: one renewal answers them
    assert daemons.b.current_rate == pytest.approx(RATE / 4)  # halved once, not per notice


def test_sqlite_listens_for_nothing(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    assert ThrottleListener.of(engine, print) is None
    assert CHANNEL.isidentifier()


class Opened:
    """What a connect hands back, noting whether it was closed again."""

    terminated = False

    def add_termination_listener(self, _callback: Callable[[object], None]) -> None:
        pass

    async def add_listener(self, _channel: str, _callback: Callable[..., None]) -> None:
        pass

    def get_server_pid(self) -> int:
        return 1

    async def execute(self, _sql: str) -> str:
        return "SELECT 1"

    def terminate(self) -> None:
        self.terminated = True


async def test_a_listener_stopped_as_its_connection_opens_stops_and_closes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The stop lands in the loop turn the connect completes in (a daemon shutting down as
    # the database comes back): asyncio.wait_for on Python 3.11 hands back the connection
    # and drops the cancellation, and the daemon would wait for the listener for ever.
    gate = asyncio.Event()
    opened: list[Opened] = []

    async def connect(*_args: object, **_kwargs: object) -> Opened:
        await gate.wait()
        opened.append(Opened())
        return opened[-1]

    monkeypatch.setattr(asyncpg, "connect", connect)
    engine = create_engine("postgresql://harvester@127.0.0.1:1/nowhere")
    listener = ThrottleListener(engine, print, ping_every_s=3600.0)
    running = asyncio.create_task(listener.run())
    await asyncio.sleep(0)  # it waits for its connection now
    gate.set()
    running.cancel()
    try:
        async with asyncio.timeout(PROMPTLY_S):
            await asyncio.gather(running, return_exceptions=True)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await engine.dispose()
    assert running.cancelled()
    assert all(connection.terminated for connection in opened)


async def test_a_database_url_with_an_option_of_sqlalchemys_still_listens(
    postgres_url: str,
) -> None:
    # prepared_statement_cache_size is SQLAlchemy's (its asyncpg adapter takes it from the
    # URL), not asyncpg.connect's: the daemon's engine works with it, so must the listener.
    engine = create_engine(f"{postgres_url}?prepared_statement_cache_size=0")
    listener = ThrottleListener(engine, print, reconnect=FAST)
    running = asyncio.create_task(listener.run())
    heard = asyncio.create_task(listener.listening.wait())
    try:
        await asyncio.wait({running, heard}, timeout=PROMPTLY_S, return_when="FIRST_COMPLETED")
        assert listener.listening.is_set(), running.exception() if running.done() else running
    finally:
        for task in (running, heard):
            task.cancel()
        await asyncio.gather(running, heard, return_exceptions=True)
        await engine.dispose()
