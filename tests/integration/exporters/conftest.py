"""The harvest every export test reads, made once per test run."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import structlog
from export_harvest import Harvest, harvest_into, written_harvest_into

from harvester.records import SubmitReport


@pytest.fixture(scope="package")
def harvest(tmp_path_factory: pytest.TempPathFactory) -> Harvest:
    return asyncio.run(harvest_into(tmp_path_factory.mktemp("harvest")))


@pytest.fixture(scope="package")
def as_written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Harvest, SubmitReport]:
    return asyncio.run(written_harvest_into(tmp_path_factory.mktemp("written")))


@pytest.fixture(autouse=True)
def _logging_left_as_found() -> Iterator[None]:
    """`main()` runs in process here and points logs at the captured stream; undo it."""
    yield
    structlog.reset_defaults()
