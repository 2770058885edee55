"""The plain values that cross the process-pool boundary (all picklable)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

__all__ = ["Metadata", "Processed", "SizeRules"]


@dataclass(frozen=True)
class SizeRules:
    """What a stored image must look like (defaults follow the im2gps recipe)."""

    max_side: int = 1024
    min_side: int = 500
    quality: int = 90
    max_pixels: int = 120_000_000
    # PNG and WebP have no scaled decoding: the whole picture is decoded, so their pixel
    # limit follows from what one image may cost a worker (decode.full_decode_pixels).
    max_decode_bytes: int = 300 * 2**20
    strip_frames: bool = True

    def __post_init__(self) -> None:
        if self.max_side < 1 or self.min_side < 0 or self.max_pixels < 1:
            raise ValueError("size limits must be positive")
        if not 1 <= self.quality <= 100:
            raise ValueError("JPEG quality must be within 1..100")


@dataclass(frozen=True)
class Metadata:
    """Facts written into the stored JPEG's EXIF, so a file explains itself."""

    lat: float | None = None
    lon: float | None = None
    heading: float | None = None
    captured_at: datetime | None = None
    artist: str | None = None
    copyright: str | None = None
    description: Mapping[str, object] | None = None


@dataclass(frozen=True)
class Processed:
    """The stored JPEG and the facts the images row records about it.

    Source dimensions are upright (after EXIF orientation); `frame` is the
    border removed as (top, right, bottom, left) in source pixels.
    """

    jpeg: bytes
    width: int
    height: int
    source_width: int
    source_height: int
    source_format: str
    frame: tuple[int, int, int, int]
    sha256: str
    phash: str | None = None  # 64-bit perceptual hash, hex (harvester.imaging.phash)
