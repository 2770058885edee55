"""A local Flickr, Mapillary and image CDN with fault injection.

It plays the outside world for the demo, the tests and the benchmarks, so it
imports nothing from the rest of harvester.
"""

from __future__ import annotations

from harvester.emulator.config import (
    AREA,
    FLICKR_KEY,
    MAPILLARY_TOKEN,
    PER_SIDE,
    EmulatorConfig,
    Faults,
    Outage,
    Warts,
    WorldSize,
)
from harvester.emulator.deleted import Deletions
from harvester.emulator.flickr_world import FlickrPhoto
from harvester.emulator.mapillary_world import MapillaryImage
from harvester.emulator.server import RunningEmulator, build_app, main, start_emulator
from harvester.emulator.world import World

__all__ = [
    "AREA",
    "FLICKR_KEY",
    "MAPILLARY_TOKEN",
    "PER_SIDE",
    "Deletions",
    "EmulatorConfig",
    "Faults",
    "FlickrPhoto",
    "MapillaryImage",
    "Outage",
    "RunningEmulator",
    "Warts",
    "World",
    "WorldSize",
    "build_app",
    "main",
    "start_emulator",
]
