"""`harvester emulator` says what to export and what its world holds."""

from __future__ import annotations

from harvester.emulator import EmulatorConfig, RunningEmulator
from harvester.emulator.server import describe


async def test_the_emulator_prints_the_urls_to_export_and_its_world(
    emulator: RunningEmulator,
) -> None:
    text = "\n".join(describe(emulator, EmulatorConfig()))
    assert f"export HARVESTER_FLICKR_API_URL={emulator.flickr_api_url}\n" in text
    assert f"export HARVESTER_MAPILLARY_API_URL={emulator.mapillary_api_url}\n" in text
    assert "Flickr keywords: sunset, beach" in text and "Mapillary regions: tsukuba" in text
    first = sorted(emulator.world.mapillary.by_sequence)[0]
    assert f"Mapillary sequences, e.g.: {first}" in text
