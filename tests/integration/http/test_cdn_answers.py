"""Image CDN answers as real edges give them, fetched over loopback from the emulator."""

from __future__ import annotations

import random

import pytest
from clocks import FakeClock
from http_upstream import make_settings

from harvester.emulator import EmulatorConfig, Faults, start_emulator
from harvester.http import HttpClient, TruncatedBodyError


async def test_a_206_partial_body_nobody_asked_for_is_truncated_and_retried() -> None:
    """A 206 to a request without Range carries part of the picture: a short body like any
    other (transient, retried), never bytes handed on as the image."""
    emulator = await start_emulator(EmulatorConfig(faults=Faults(partial_rate=1.0)))
    try:
        url = emulator.world.url_list(1, base_url=emulator.base_url, hostile=False)[0]["url"]
        settings = make_settings(max_attempts=3)
        async with HttpClient(settings, clock=FakeClock(), rng=random.Random(7)) as http:
            with pytest.raises(TruncatedBodyError, match="206"):
                await http.fetch(url)
        stats = emulator.state.stats.snapshot()
    finally:
        await emulator.close()
    assert stats["partial"] == 3  # every attempt was a 206, and each was retried
