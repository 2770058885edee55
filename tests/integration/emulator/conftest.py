"""Emulators started in-process on a free port, and a client session for them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from emu_helpers import Starter

from harvester.emulator import EmulatorConfig, RunningEmulator, start_emulator


@pytest.fixture
async def start() -> AsyncIterator[Starter]:
    """Start emulators with any config; all are closed after the test."""
    running: list[RunningEmulator] = []

    async def _start(**overrides: Any) -> RunningEmulator:
        emu = await start_emulator(EmulatorConfig(**overrides))
        running.append(emu)
        return emu

    yield _start
    for emu in running:
        await emu.close()


@pytest.fixture
async def emulator(start: Starter) -> RunningEmulator:
    return await start()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s
