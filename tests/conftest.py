"""Shared fixtures: real SQLite files and a real Postgres database per test."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.config import Settings, load_settings
from harvester.db.migrate import upgrade
from harvester.db.session import create_engine
from harvester.emulator import EmulatorConfig, RunningEmulator, start_emulator

PG_HOST = os.environ.get("HARVESTER_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("HARVESTER_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("HARVESTER_TEST_PG_USER", "postgres")
REQUIRE_POSTGRES = os.environ.get("HARVESTER_REQUIRE_POSTGRES") == "1"
HOW_TO_ENABLE = (
    f"PostgreSQL is not reachable on {PG_HOST}:{PG_PORT}; start it "
    "(pg_ctlcluster --skip-systemctl-redirect <version> main start) or set "
    "HARVESTER_TEST_PG_HOST/PORT/USER to run the Postgres tests"
)


def _postgres_available() -> bool:
    async def probe() -> bool:
        try:
            connection = await asyncpg.connect(
                host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres", timeout=3
            )
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        await connection.close()
        return True

    return asyncio.run(probe())


_PG_UP: bool | None = None


def postgres_or_skip() -> None:
    global _PG_UP
    if _PG_UP is None:
        _PG_UP = _postgres_available()
    if not _PG_UP:
        if REQUIRE_POSTGRES:
            pytest.fail(HOW_TO_ENABLE + " (HARVESTER_REQUIRE_POSTGRES=1 forbids skipping)")
        pytest.skip(HOW_TO_ENABLE)


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres"
    )
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty Postgres database, dropped afterwards."""
    postgres_or_skip()
    name = f"harvester_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'harvester.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Every conformance test runs on both databases."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


@asynccontextmanager
async def migrated_engine(url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(url)
    try:
        await upgrade(engine)
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    async with migrated_engine(database_url) as migrated:
        yield migrated


@pytest.fixture
async def sqlite_engine(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    """A migrated SQLite engine, for tests whose subject is not the database."""
    async with migrated_engine(sqlite_url) as migrated:
        yield migrated


@pytest.fixture
def quick_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings for a harvest inside a test: two processes, back-off in milliseconds,
    files under tmp_path/data. Keyword arguments override any of them."""

    def make(database_url: str, **overrides: Any) -> Settings:
        defaults: dict[str, Any] = {
            "database_url": database_url,
            "storage_root": tmp_path / "data",
            "processes": 2,
            "concurrency": 16,
            "max_attempts": 3,
            "backoff_base_seconds": 0.05,
            "backoff_max_seconds": 0.2,
            # The emulator and test servers listen on loopback, allowed as an operator would.
            "allow_networks": ["127.0.0.1"],
        }
        return load_settings(**{**defaults, **overrides})

    return make


@pytest.fixture
async def emulator() -> AsyncIterator[RunningEmulator]:
    """The emulator with its default world and no faults, on a free loopback port."""
    running = await start_emulator(EmulatorConfig())
    yield running
    await running.close()


# Per tier, seconds a single test may take before pytest-timeout fails it (an explicit
# @pytest.mark.timeout on a test wins). A hung test fails in its tier's time, not the suite's.
TIER_TIMEOUT_S = {"unit": 60, "fuzz": 120, "integration": 240, "acceptance": 300}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests = Path(__file__).resolve().parent
    for item in items:
        tier = Path(str(item.path)).resolve().relative_to(tests).parts[0]
        if tier in TIER_TIMEOUT_S and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(TIER_TIMEOUT_S[tier]))
