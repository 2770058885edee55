"""Acceptance tests import their harness as a plain module."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from daemon_harness import Harness


@pytest.fixture
async def harness(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    """The CLI on a SQLite database, files under tmp_path/data; its emulator stopped after.
    A module whose subject is the database as well overrides this with `database_url`."""
    h = Harness(sqlite_url, tmp_path / "data")
    yield h
    await h.stop_emulator()
