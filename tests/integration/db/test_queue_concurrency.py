"""Many claimers in several OS processes never hold the same row at once."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from pathlib import Path

import pytest
from defaults import MAX_ATTEMPTS
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.campaigns import ensure_campaign
from harvester.db.enqueue import enqueue_tasks
from harvester.db.models import Task
from harvester.records import NewTask

CLAIMER = Path(__file__).with_name("claimer.py")


async def _run_claimers(url: str, processes: int, workers: int, tmp_path: Path) -> list[str]:
    logs = [tmp_path / f"claims-{p}.log" for p in range(processes)]
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, str(CLAIMER), url, f"p{p}", str(workers), str(logs[p])
        )
        for p in range(processes)
    ]
    codes = await asyncio.gather(*(proc.wait() for proc in procs))
    assert codes == [0] * processes
    return [line for log in logs for line in log.read_text().split("\n") if line]


@pytest.mark.parametrize("processes,workers", [(2, 4)])
async def test_concurrent_claimers_finish_every_row_exactly_once(
    engine: AsyncEngine, database_url: str, tmp_path: Path, processes: int, workers: int
):
    rows = 5000 if "postgres" in database_url else 2000
    campaign = await ensure_campaign(engine, "load", "urls", {})
    await enqueue_tasks(
        engine,
        campaign,
        (NewTask("probe", f"k{i}") for i in range(rows)),
        default_max_attempts=MAX_ATTEMPTS,
    )

    claims = await _run_claimers(database_url, processes, workers, tmp_path)

    ids = Counter(int(line.split()[1]) for line in claims)
    assert len(ids) == rows and set(ids.values()) == {1}, "a row was handed out twice"
    assert {line.split()[2] for line in claims} == {"1"}, "a row was claimed more than once"
    assert len({line.split()[0] for line in claims}) > 1, "the work was not shared"
    async with engine.connect() as connection:
        states = dict(
            (await connection.execute(select(Task.state, func.count()).group_by(Task.state))).all()
        )
    assert states == {"done": rows}
