"""A local Flickr, Mapillary and image CDN with fault injection.

It plays the outside world for the demo, the tests and the benchmarks, so it
imports nothing from the rest of harvester.
"""

from __future__ import annotations

from harvester.emulator.config import EmulatorConfig, Faults, WorldSize
from harvester.emulator.flickr_world import FlickrPhoto
from harvester.emulator.mapillary_world import MapillaryImage
from harvester.emulator.server import RunningEmulator, build_app, main, start_emulator
from harvester.emulator.world import World

__all__ = [
    "EmulatorConfig",
    "Faults",
    "FlickrPhoto",
    "MapillaryImage",
    "RunningEmulator",
    "World",
    "WorldSize",
    "build_app",
    "main",
    "start_emulator",
]
