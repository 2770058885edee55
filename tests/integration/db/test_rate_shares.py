"""Slices of one limit leased through the database: by several holders, several processes."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from clocks import max_in_window
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.rate_shares import DatabaseRateShares

CALLER = Path(__file__).with_name("rate_caller.py")


class WallClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def test_live_slices_of_a_key_never_add_up_to_more_than_its_limit(
    engine: AsyncEngine,
) -> None:
    clock = WallClock()
    shares = DatabaseRateShares(engine, 30.0, clock=clock)
    assert (await shares.take("k", "a", 12.0)).rate == 12.0
    assert (await shares.take("k", "b", 12.0)).rate == 0.0  # a holds it all until it renews
    assert (await shares.take("k", "a", 12.0)).rate == 6.0
    assert (await shares.take("k", "b", 12.0)).rate == 6.0
    assert (await shares.take("other", "b", 5.0)).rate == 5.0  # keys are separate
    assert await shares.holders("k") == {"a": 6.0, "b": 6.0}


async def test_an_expired_slice_counts_for_nothing_and_is_granted_again(
    engine: AsyncEngine,
) -> None:
    clock = WallClock()
    shares = DatabaseRateShares(engine, 10.0, clock=clock)
    await shares.take("k", "dead", 9.0)
    clock.now += timedelta(seconds=9)
    assert (await shares.take("k", "alive", 9.0)).rate == 0.0
    clock.now += timedelta(seconds=1)  # the dead holder's lease is over
    assert (await shares.take("k", "alive", 9.0)).rate == 9.0
    assert await shares.holders("k") == {"alive": 9.0}
    await shares.give_back("k", "alive")
    assert await shares.holders("k") == {}


async def test_dropped_holders_slices_count_for_nothing_before_their_lease_ends(
    engine: AsyncEngine,
) -> None:
    shares = DatabaseRateShares(engine, 3600.0)  # no lease ends during the test
    for key, holder in (("k", "dead"), ("other", "dead"), ("other", "alive")):
        await shares.take(key, holder, 9.0 if key == "k" else 4.0)
    assert await shares.holder_names() == {"dead", "alive"}
    assert await shares.drop_holders(["dead"]) == 2
    assert (await shares.take("k", "alive", 9.0)).rate == 9.0  # at once, not in 30 s
    assert await shares.holders("other") == {"alive": 0.0}
    assert await shares.drop_holders([]) == 0


def _calls(out: Path) -> list[tuple[float, float]]:
    """(time, slice held) per admitted call; a line cut short by a kill is left out."""
    lines = [line.split() for line in out.read_text().split("\n")]
    return [(float(t), float(r)) for t, r, *_ in (x for x in lines if len(x) == 2)]


async def _until(what: str, done: Callable[[], bool]) -> None:
    try:
        async with asyncio.timeout(90):  # a bound for a busy machine, not a timing property
            while not done():  # noqa: ASYNC110 - polling files other processes write
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"never reached: {what}") from None


async def test_processes_sharing_a_key_hold_its_limit_and_a_killed_ones_share_returns(
    database_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    rate, lease = 30.0, 1.5
    outs = [tmp_path / f"calls-{i}.txt" for i in range(3)]
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(CALLER),
            database_url,
            str(rate),
            str(lease),
            str(out),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for out in outs
    ]
    for proc in procs:
        assert proc.stdout is not None
        async with asyncio.timeout(60):
            assert (await proc.stdout.readline()).strip() == b"ready"
    # Each settles on a third of the rate.
    await _until("a third each", lambda: all(c and c[-1][1] == rate / 3 for c in map(_calls, outs)))
    killed_at = time.time()  # before the kill: a test slow to note it cannot move it later
    procs[2].send_signal(signal.SIGKILL)
    assert await procs[2].wait() == -signal.SIGKILL
    # The survivors take the dead one's third back, once its lease has run out.
    await _until("a half each", lambda: all(_calls(o)[-1][1] == rate / 2 for o in outs[:2]))
    for proc in procs[:2]:
        assert proc.stdin is not None
        proc.stdin.close()
    assert [await proc.wait() for proc in procs[:2]] == [0, 0]

    held = [_calls(out) for out in outs]
    calls = sorted(t for per in held for t, _ in per)
    # Never more than the limit in any second, beyond the burst (3) and one call per holder.
    assert max_in_window(calls, 1.0) <= rate + 3 + 3
    assert len(calls) <= rate * (calls[-1] - calls[0]) + 3 + 3
    # A half came only after the dead holder's lease could have run out (it renewed at
    # most a third of a lease before it died).
    first_half = min(t for per in held[:2] for t, r in per if r == rate / 2 and t > killed_at)
    assert first_half > killed_at + lease * 2 / 3 - 0.05
    assert await DatabaseRateShares(engine, lease).holders("test:key") == {}
