"""The harvest every export test reads, made once per test run."""

from __future__ import annotations

import asyncio

import pytest
from export_harvest import Harvest, harvest_into


@pytest.fixture(scope="package")
def harvest(tmp_path_factory: pytest.TempPathFactory) -> Harvest:
    return asyncio.run(harvest_into(tmp_path_factory.mktemp("harvest")))
