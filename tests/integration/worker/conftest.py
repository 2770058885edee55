"""The harvest the daemon tests here share."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from worker_harness import Harvest

from harvester.config import Settings
from harvester.emulator import RunningEmulator


@pytest.fixture
def harvest(
    sqlite_url: str,
    sqlite_engine: AsyncEngine,
    tmp_path: Path,
    emulator: RunningEmulator,
    quick_settings: Callable[..., Settings],
) -> Harvest:
    return Harvest(sqlite_url, sqlite_engine, tmp_path, emulator, quick_settings)
