"""Emulator settings: world size, fault knobs and per-key rate limits.

Kept as plain dataclasses (no pydantic) because the emulator plays the outside
world and must not depend on the harvester's own configuration machinery.
"""

from __future__ import annotations

from dataclasses import dataclass, field

API = "api"
CDN = "cdn"


@dataclass
class Faults:
    """Misbehaviour injected into responses, scoped to the API and/or the CDN."""

    latency_ms: float = 0
    error_5xx_rate: float = 0
    rate_429: float = 0
    retry_after_s: float = 1.0
    reset_rate: float = 0
    truncate_rate: float = 0
    scope: frozenset[str] = frozenset({API, CDN})


@dataclass(frozen=True)
class WorldSize:
    """How big the generated world is; the default starts in well under a second."""

    flickr_photos: int = 16_000
    flickr_years: tuple[int, int] = (2008, 2023)
    flickr_no_geo_fraction: float = 0.12
    mapillary_paths: int = 8
    mapillary_dense_images: int = 2600
    hostile_urls_every: int = 9


@dataclass
class EmulatorConfig:
    """Everything the emulator needs; equal configs give equal worlds and answers."""

    seed: int = 7
    faults: Faults = field(default_factory=Faults)
    flickr_keys: frozenset[str] | None = None
    mapillary_tokens: frozenset[str] | None = None
    flickr_rate_per_s: float | None = None
    mapillary_rate_per_s: float | None = None
    url_ttl_s: float = 3600
    world: WorldSize = field(default_factory=WorldSize)
    cdn_cache_bytes: int = 256 * 1024 * 1024
    # None: every photo is its own picture. N: at most N distinct pictures per
    # shape, so benchmarks hit the render cache instead of the renderer.
    image_variety: int | None = None
