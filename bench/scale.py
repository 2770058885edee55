"""`make bench-scale`: the queue at millions of rows (2M on PostgreSQL, 1M on SQLite).

Fills the images table with a harvest nine-tenths done (finished rows stored, the rest
queued), then four claimer processes at once each claim 100 rows and record their outcomes,
round after round, through the real `Queue`. Reports claim and outcome-batch latency
(p50/p99), `status` latency (the real `campaign_counts`), and table and index sizes.
`BENCH_PG_ROWS`, `BENCH_SQLITE_ROWS` and `BENCH_ROUNDS` scale it down for a quick look (0 rows
skips that database). Each run also records the load average, since the machine may be shared,
and works in databases of its own (named by its pid), dropped at the end, on failure too.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import secrets
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.counts import campaign_counts
from harvester.db.migrate import upgrade
from harvester.db.models import Image, ImageState
from harvester.db.queue import Outcome, Queue
from harvester.db.session import create_engine

WORK = Path(__file__).resolve().parent / ".work" / "scale"
PG_ADMIN = os.environ.get("BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
CLAIMERS = 4
BATCH = 100
QUEUED_EVERY = 10  # one row in ten still queued

# One statement fills the table on both databases (a recursive CTE: SQLite has no
# generate_series). Rows carry what a finished URL-list row carries, less the raw record.
FILL = """
WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < :n)
INSERT INTO images (campaign_id, provider, provider_id, state, group_name, shard, file_name,
                    path, source_url, sha256, bytes, attempts, max_attempts, not_before,
                    created_at, updated_at, finished_at)
SELECT 1, 'urls', 'bench:' || x,
       CASE WHEN x % :every = 0 THEN 'queued' ELSE 'stored' END,
       'bench', x / 1000, x || '.jpg',
       CASE WHEN x % :every = 0 THEN NULL
            ELSE 'urls/bench/' || (x / 1000) || '/' || x || '.jpg' END,
       'https://cdn.example.org/images/' || x || '.jpg',
       CASE WHEN x % :every = 0 THEN NULL
            ELSE '5f2b8c1e9d3a7b6c4e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d' END,
       CASE WHEN x % :every = 0 THEN NULL ELSE 180000 END,
       CASE WHEN x % :every = 0 THEN 0 ELSE 1 END, 5, {past}, {past}, {past},
       CASE WHEN x % :every = 0 THEN NULL ELSE {past} END
FROM g
"""


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _ms(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(_percentile(values, 0.5) * 1000, 2),
        "p99_ms": round(_percentile(values, 0.99) * 1000, 2),
        "max_ms": round(max(values) * 1000, 2),
        "n": len(values),
    }


async def _backend_pid(engine: AsyncEngine) -> int | None:
    """The PostgreSQL server process of the claimer's one pooled connection (it runs one
    statement at a time, so the pool never opens a second), or None on SQLite."""
    if engine.dialect.name != "postgresql":
        return None
    async with engine.connect() as connection:
        return int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())


def _server_cpu_s(pid: int | None) -> float:
    """The on-CPU time of a local server process so far (the scheduler's nanoseconds, not
    the 10 ms ticks of /proc/<pid>/stat); 0 without one to read."""
    if pid is None:
        return 0.0
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except OSError:
        return 0.0


async def _claimer(url: str, name: str, rounds: int) -> dict[str, list[float]]:
    """Wall time and this process's CPU time of each claim and each outcome batch (CPU is
    what the claimer costs the machine, whatever else runs on it), and on a local
    PostgreSQL the CPU its server process spent on each."""
    engine = create_engine(url)
    queue = Queue(engine, Image)
    keys = ("claims", "outcomes", "claim_cpu", "outcome_cpu", "claim_server", "outcome_server")
    times: dict[str, list[float]] = {key: [] for key in keys}
    try:
        pid = await _backend_pid(engine)
        for _ in range(rounds):
            started, cpu, server = time.perf_counter(), time.process_time(), _server_cpu_s(pid)
            rows = await queue.claim(name, BATCH, 300)
            times["claims"].append(time.perf_counter() - started)
            times["claim_cpu"].append(time.process_time() - cpu)
            times["claim_server"].append(_server_cpu_s(pid) - server)
            done = [Outcome(row.id, ImageState.STORED, {"bytes": 180_000}) for row in rows]
            started, cpu, server = time.perf_counter(), time.process_time(), _server_cpu_s(pid)
            await queue.finish(name, done)
            times["outcomes"].append(time.perf_counter() - started)
            times["outcome_cpu"].append(time.process_time() - cpu)
            times["outcome_server"].append(_server_cpu_s(pid) - server)
    finally:
        await engine.dispose()
    return times


def _claimer_process(url: str, name: str, rounds: int, out: Any) -> None:
    out.put(asyncio.run(_claimer(url, name, rounds)))


def _claim_at_once(url: str, rounds: int) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    procs = [
        context.Process(target=_claimer_process, args=(url, f"bench-{i}", rounds, out))
        for i in range(CLAIMERS)
    ]
    for proc in procs:
        proc.start()
    results = [out.get() for _ in procs]
    for proc in procs:
        proc.join()

    # A claimer's first round also connects and prepares its statements (a daemon does that
    # once): reported apart, so that it is not 4 of the 200 samples deciding the p99.
    def later(key: str) -> list[float]:
        return [t for result in results for t in result[key][1:]]

    first = [r["claims"][0] + r["outcomes"][0] for r in results]
    return {
        "claim_100": _ms(later("claims")),
        "outcome_100": _ms(later("outcomes")),
        "claimer_cpu_ms_median": {
            "claim": round(statistics.median(later("claim_cpu")) * 1000, 2),
            "outcomes": round(statistics.median(later("outcome_cpu")) * 1000, 2),
        },
        "server_cpu_ms_median": {
            "claim": round(statistics.median(later("claim_server")) * 1000, 2),
            "outcomes": round(statistics.median(later("outcome_server")) * 1000, 2),
        },
        "first_round_ms": [round(t * 1000, 1) for t in first],
    }


async def _fill(engine: AsyncEngine, rows: int) -> float:
    started = time.perf_counter()
    postgres = engine.dialect.name == "postgresql"
    past = "now() - interval '1 day'" if postgres else "'2026-01-01 00:00:00.000000'"
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO campaigns (id, name, provider, settings, created_at) "
                f"VALUES (1, 'bench', 'urls', '{{}}', {past})"
            )
        )
        await connection.execute(text(FILL.format(past=past)), {"n": rows, "every": QUEUED_EVERY})
    async with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text("VACUUM ANALYZE images"))
            # The fill's WAL is written out now, not by a checkpoint in the middle of the
            # claims: a bulk load's one-off cost is not the queue's steady state.
            await connection.execute(text("CHECKPOINT"))
        else:
            await connection.execute(text("ANALYZE"))
    return time.perf_counter() - started


async def _status_latency(engine: AsyncEngine) -> dict[str, float]:
    times = []
    for _ in range(5):
        started = time.perf_counter()
        await campaign_counts(engine)
        times.append(time.perf_counter() - started)
    return {
        "median_ms": round(statistics.median(times) * 1000, 1),
        "max_ms": round(max(times) * 1000, 1),
    }


async def _sizes(engine: AsyncEngine, sqlite_file: Path | None) -> dict[str, Any]:
    async with engine.connect() as connection:
        if sqlite_file is None:
            rows = await connection.execute(
                text(
                    "SELECT c.relname, pg_relation_size(c.oid) FROM pg_class c "
                    "WHERE c.relname LIKE 'images%' OR c.relname LIKE 'ix_images%' "
                    "OR c.relname LIKE 'uq_images%' OR c.relname = 'pk_images'"
                )
            )
        else:
            rows = await connection.execute(
                text("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")
            )
        sizes = {name: round(size / 2**20, 1) for name, size in rows if size}
    return {k: sizes[k] for k in sorted(sizes, key=lambda k: -sizes[k]) if "images" in k}


async def _plan(engine: AsyncEngine) -> list[str]:
    """The claim query's plan, to check it walks the partial index (not the table). On
    PostgreSQL it is run (EXPLAIN ANALYZE, rolled back) for the buffers it touches: a claim
    bounded by its batch touches as many at 200,000 rows as at 2M, whatever the load. It is
    the statement `Queue` runs: one statement on PostgreSQL, the plain claim on SQLite."""
    from harvester.db.clock import utcnow
    from harvester.db.queue_claims import (
        claim_statement,
        claim_values,
        one_statement_claim,
        one_statement_values,
    )

    postgres = engine.dialect.name == "postgresql"
    async with engine.connect() as connection:
        if postgres:
            compiled = one_statement_claim(Image, BATCH).compile(engine.sync_engine)
            values = compiled.construct_params(one_statement_values("plan", 300))
            params = tuple(values[name] for name in compiled.positiontup or ())
            sql = f"EXPLAIN (ANALYZE, BUFFERS) {compiled}"
            rows = await connection.exec_driver_sql(sql, params)
        else:
            statement = claim_statement(Image, claim_values(utcnow(), BATCH, "plan", 300))
            compiled = statement.compile(engine.sync_engine, compile_kwargs={"literal_binds": True})
            rows = await connection.execute(text("EXPLAIN QUERY PLAN " + str(compiled)))
        plan = [" ".join(str(c) for c in row) for row in rows]
        await connection.rollback()
    return plan


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _run_name() -> str:
    """This run's database name: two runs at once (two people on one machine) would
    otherwise fill, claim from and drop one database between them."""
    return f"harvester_bench_scale_{os.getpid()}_{secrets.token_hex(3)}"


async def _admin(sql: str) -> None:
    admin = create_engine(PG_ADMIN)
    try:
        async with admin.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text(sql))
    finally:
        await admin.dispose()


@asynccontextmanager
async def _database(kind: str) -> AsyncIterator[tuple[str, Path | None]]:
    """A database of this run's own (its URL, and its file on SQLite), removed at the end
    on failure or Ctrl-C too: 2M rows left behind per run would fill the disk."""
    name = _run_name()
    if kind == "sqlite":
        path = WORK / f"{name}.db"
        try:
            yield f"sqlite:///{path}", path
        finally:
            _remove_sqlite(path)
        return
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}", None
    finally:  # FORCE: a claimer that failed may still be connected
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def measure(kind: str, rows: int, rounds: int) -> dict[str, Any]:
    async with _database(kind) as (url, sqlite_file):
        engine = create_engine(url)
        try:
            await upgrade(engine)
            fill_s = await _fill(engine, rows)
            plan = await _plan(engine)
            status_before = await _status_latency(engine)
            await engine.dispose()
            latencies = await asyncio.to_thread(_claim_at_once, url, rounds)
            engine = create_engine(url)
            return {
                "database": kind,
                "rows": rows,
                "load_average": [round(x, 2) for x in os.getloadavg()],
                "queued": rows // QUEUED_EVERY,
                "fill_s": round(fill_s, 1),
                **latencies,
                "status": status_before,
                "status_after_claims": await _status_latency(engine),
                "sizes_mb": await _sizes(engine, sqlite_file),
                "claim_plan": plan,
                "claim_plan_after_claims": await _plan(engine),
            }
        finally:
            await engine.dispose()


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    rounds = int(os.environ.get("BENCH_ROUNDS", "50"))
    sizes = {
        "postgres": int(os.environ.get("BENCH_PG_ROWS", "2000000")),
        "sqlite": int(os.environ.get("BENCH_SQLITE_ROWS", "1000000")),
    }
    results = [asyncio.run(measure(kind, rows, rounds)) for kind, rows in sizes.items() if rows]
    print(json.dumps(results, indent=2))
    (WORK / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
