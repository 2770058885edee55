"""Migrations are the schema's only source: they build it, take it down, and match the models."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.duplicates import _FIRST_STORED_POSTGRES, _FIRST_STORED_SQLITE, _STORED
from harvester.db.migrate import (
    current_revision,
    declared_head,
    downgrade,
    head_revision,
    upgrade,
)
from harvester.db.models import Base, Image, Task
from harvester.db.queue_claims import (
    claim_statement,
    claim_values,
    one_statement_claim,
    one_statement_values,
    rescue_statement,
)
from harvester.db.session import create_engine, read_connection

TABLES = {"campaigns", "tasks", "images", "image_hits", "licenses", "shard_counters"}


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))


def test_the_head_the_files_declare_is_alembics_head():
    # `upgrade` leaves Alembic out when the database is at the declared head.
    assert head_revision() is not None
    assert declared_head() == head_revision()


async def test_a_database_behind_the_head_is_upgraded_to_it(sqlite_url: str):
    engine = create_engine(sqlite_url)
    try:
        await upgrade(engine)
        await downgrade(engine, "-1")
        assert await current_revision(engine) != head_revision()
        await upgrade(engine)
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


async def test_a_database_a_newer_harvester_upgraded_is_refused_in_one_line_and_left_alone(
    database_url: str,
):
    engine = create_engine(database_url)
    try:
        await upgrade(engine)
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE alembic_version SET version_num = '0999'"))
        # The real CLI in a process of its own: run in this one, it would set the logging
        # of every later test to a captured stream that is closed once this test ends.
        cli = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "harvester.cli", "--database-url", database_url, "status",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, said = await asyncio.wait_for(cli.communicate(), 120)
        assert await current_revision(engine) == "0999"
    finally:
        await engine.dispose()
    err = said.decode()
    assert cli.returncode == 2 and len(err.strip().splitlines()) == 1, err
    assert "schema revision 0999" in err and f"newest is {head_revision()}" in err, err


async def test_migrations_upgrade_an_empty_database_and_downgrade_cleanly(database_url: str):
    engine = create_engine(database_url)
    try:
        await upgrade(engine)
        assert await _tables(engine) >= TABLES
        assert await current_revision(engine) == head_revision()
        await downgrade(engine, "base")
        assert await _tables(engine) <= {"alembic_version"}
        await upgrade(engine)  # and back up again
        assert await _tables(engine) >= TABLES
    finally:
        await engine.dispose()


async def test_models_match_the_migrated_schema(engine: AsyncEngine):
    async with engine.connect() as connection:
        diff = await connection.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(sync, opts={"compare_type": True}), Base.metadata
            )
        )
    assert diff == []


async def test_state_columns_refuse_unknown_states(engine: AsyncEngine):
    now = datetime.now(UTC)
    with pytest.raises(IntegrityError):
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO campaigns (name, provider, settings, created_at) "
                    "VALUES ('x', 'flickr', '{}', :now)"
                ),
                {"now": now},
            )
            await connection.execute(
                Task.__table__.insert().values(
                    campaign_id=1,
                    kind="k",
                    payload={},
                    state="exploded",
                    dedupe_key="d",
                    not_before=now,
                    created_at=now,
                    updated_at=now,
                )
            )


async def test_two_daemons_upgrading_at_once_do_not_race(postgres_url: str):
    engines = [create_engine(postgres_url) for _ in range(3)]
    try:
        await asyncio.gather(*(upgrade(engine) for engine in engines))
        assert await current_revision(engines[0]) == head_revision()
    finally:
        for engine in engines:
            await engine.dispose()


FILL = {
    "tasks": (
        "INSERT INTO tasks (campaign_id, kind, payload, state, dedupe_key, not_before, "
        "created_at, updated_at, attempts, max_attempts, lease_expires_at) "
        "SELECT 1, 'k', '{{}}', {state}, 'k' || g, now(), now(), now(), 1, 5, {lease} "
        "FROM generate_series(1, 50000) g"
    ),
    "images": (
        "INSERT INTO images (campaign_id, provider, provider_id, state, group_name, shard, "
        "file_name, not_before, created_at, updated_at, attempts, max_attempts, "
        "lease_expires_at) SELECT 1, 'urls', 'u' || g, {state}, 'g', g / 1000, g || '.jpg', "
        "now(), now(), now(), 1, 5, {lease} FROM generate_series(1, 50000) g"
    ),
}
# A realistic table: most rows long finished, a few queued, a few leased.
STATE = "CASE WHEN g % 100 = 0 THEN 'queued' WHEN g % 100 = 1 THEN 'running' ELSE {done} END"
LEASE = "CASE WHEN g % 100 = 1 THEN now() + interval '1 minute' END"


def _sql_literal(value: Any) -> str:
    if isinstance(value, timedelta):
        return f"interval '{value.total_seconds()} seconds'"
    return f"'{value}'" if isinstance(value, str) else str(value)


@pytest.mark.parametrize("model", [Task, Image], ids=["tasks", "images"])
async def test_claim_and_rescue_use_their_indexes_on_postgres(postgres_url: str, model: Any):
    engine = create_engine(postgres_url)
    table = model.__tablename__
    done = "'done'" if model is Task else "'stored'"
    try:
        await upgrade(engine)
        async with engine.begin() as connection:
            await connection.execute(
                text("INSERT INTO campaigns (name, provider, settings, created_at) "
                     "VALUES ('x', 'urls', '{}', now())")
            )  # fmt: skip
            fill = FILL[table].format(state=STATE.format(done=done), lease=LEASE)
            await connection.execute(text(fill))
            await connection.execute(text(f"ANALYZE {table}"))
            now = datetime.now(UTC)
            plans = {}
            bound = one_statement_values("w", 60)
            for name, statement in (
                ("claim", claim_statement(model, claim_values(now, 32, "w", 60))),
                ("rescue", rescue_statement(model, now)),
                ("one statement", one_statement_claim(model, 32)),
            ):
                compiled = statement.compile(dialect=connection.dialect)
                values = compiled.construct_params(bound if name == "one statement" else None)
                params = tuple(values[name] for name in compiled.positiontup or ())
                rows = await connection.exec_driver_sql(f"EXPLAIN {compiled}", params)
                plans[name] = "\n".join(row[0] for row in rows)
            # The plan PostgreSQL keeps for a statement run again and again: the partial
            # indexes serve it only if their `state = '...'` is written out, not bound.
            await connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
            await connection.exec_driver_sql(f"PREPARE claim AS {compiled}")
            values_sql = ", ".join(_sql_literal(value) for value in params)
            rows = await connection.exec_driver_sql(f"EXPLAIN EXECUTE claim({values_sql})")
            plans["generic"] = "\n".join(row[0] for row in rows)
    finally:
        await engine.dispose()
    assert f"ix_{table}_claimable" in plans["claim"], plans["claim"]
    assert f"ix_{table}_claimable" in plans["one statement"], plans["one statement"]
    assert f"ix_{table}_leased" in plans["one statement"], plans["one statement"]
    assert f"ix_{table}_claimable" in plans["generic"], plans["generic"]
    assert f"ix_{table}_leased" in plans["rescue"], plans["rescue"]
    for plan in plans.values():
        assert f"Seq Scan on {table}" not in plan, plan


async def test_sqlite_readers_do_not_queue_behind_a_writer(sqlite_url: str):
    engine = create_engine(sqlite_url)
    try:
        await upgrade(engine)
        async with engine.begin() as writer:
            await writer.execute(text("DELETE FROM licenses"))  # holds the write lock
            async with asyncio.timeout(5), read_connection(engine) as reader:
                count = await reader.execute(text("SELECT count(*) FROM campaigns"))
                assert count.scalar() == 0
    finally:
        await engine.dispose()


async def test_the_narrowed_indexes_serve_their_queries_and_leave_queue_rows_out(
    engine: AsyncEngine,
):
    # Rows in flight (queued, running, stored without a reason) have no entry in the reason
    # index and, unless stored, none in the source hash one; the lookups still use them.
    postgres = engine.dialect.name == "postgresql"
    if postgres:
        first_stored = _FIRST_STORED_POSTGRES.replace("$1::text[]", "ARRAY['ab']")
    else:
        first_stored = _FIRST_STORED_SQLITE.format("'ab'") + _STORED
    by_reason = "SELECT id FROM images WHERE campaign_id = 1 AND reason IN ('http_404')"
    explain = "EXPLAIN " if postgres else "EXPLAIN QUERY PLAN "
    async with engine.begin() as connection:
        if postgres:  # an empty table's statistics would make any plan cheap
            await connection.execute(text("SET LOCAL enable_seqscan = off"))
        plans = {}
        for name, sql in (("sha", first_stored), ("reason", by_reason)):
            rows = await connection.execute(text(explain + sql))
            plans[name] = "\n".join(" ".join(str(c) for c in row) for row in rows)
        definitions = dict(
            (await connection.execute(text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'images'"
                if postgres else
                "SELECT name, sql FROM sqlite_master WHERE tbl_name = 'images' AND sql NOT NULL"
            ))).all()
        )  # fmt: skip
    assert "ix_images_source_sha256" in plans["sha"], plans["sha"]
    assert "ix_images_campaign_reason" in plans["reason"], plans["reason"]
    assert "reason IS NOT NULL" in definitions["ix_images_campaign_reason"]
    assert "state" in definitions["ix_images_source_sha256"].split("WHERE")[1]
