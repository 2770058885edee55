"""Tiling a region for Mapillary search: tiles under the bbox limit, quadrants under the cap.

The Graph search refuses boxes over its limit and silently stops at 2,000 results, so
a region is cut into legal tiles and a tile that comes back full is cut into quadrants
until none does. The limit is read as 0.01 square degrees first (0.09-degree tiles); a
refused tile is cut under the per-side reading (sides under 0.01 degree), then halved.
Bounds are rounded to 1e-7 degrees (about 1 cm) so that neighbouring tiles share exact
edges and a tile's dedupe key is stable across runs.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harvester.errors import InputError

MAX_AREA = 0.01  # square degrees: the Graph API's limit for one bbox search, read as area
TILE_SIDE = 0.09  # degrees; 0.09 x 0.09 = 0.0081 stays safely under MAX_AREA
PER_SIDE_TILE = 0.0099  # degrees: under the stricter reading, each side below 0.01
MIN_REFUSED_SIDE = 0.002  # a tile refused as too large at this size is no limit we know
MIN_SIDE = 1e-4  # degrees (~10 m): a tile this small that is still full is accepted
MAX_FANOUT = 1024  # tiles one task (or one submit) may create at once
DECIMALS = 7


@dataclass(frozen=True)
class Tile:
    """A search box: minlon, minlat, maxlon, maxlat, in degrees."""

    minlon: float
    minlat: float
    maxlon: float
    maxlat: float

    @property
    def width(self) -> float:
        return self.maxlon - self.minlon

    @property
    def height(self) -> float:
        return self.maxlat - self.minlat

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def searchable(self) -> bool:
        """Small enough for one search request under the area reading of the limit."""
        return self.fits(TILE_SIDE)

    def fits(self, side: float) -> bool:
        """No side longer than `side` degrees (give or take the 1e-7 rounding of edges)."""
        return self.width <= side + 1e-6 and self.height <= side + 1e-6

    @property
    def divisible(self) -> bool:
        """Large enough to be split into quadrants once more."""
        return min(self.width, self.height) >= 2 * MIN_SIDE

    def param(self) -> str:
        """The `bbox` query parameter."""
        return ",".join(_fmt(v) for v in self.bounds())

    def bounds(self) -> tuple[float, float, float, float]:
        return (self.minlon, self.minlat, self.maxlon, self.maxlat)

    def contains(self, lon: float, lat: float) -> bool:
        return self.minlon <= lon <= self.maxlon and self.minlat <= lat <= self.maxlat

    @classmethod
    def of(cls, bounds: Sequence[float]) -> Tile:
        """A tile from four numbers (a task payload), checked."""
        if len(bounds) != 4:
            raise InputError(f"a bbox needs 4 numbers, got {len(bounds)}")
        minlon, minlat, maxlon, maxlat = (float(v) for v in bounds)
        return check_bbox((minlon, minlat, maxlon, maxlat))


def check_bbox(bbox: tuple[float, float, float, float]) -> Tile:
    """The bbox as a Tile, or InputError saying what is wrong with it."""
    minlon, minlat, maxlon, maxlat = bbox
    if not all(math.isfinite(v) for v in bbox):
        raise InputError("bbox coordinates must be finite numbers")
    if not (-180 <= minlon < maxlon <= 180):
        raise InputError(f"bbox longitudes must satisfy -180 <= min < max <= 180: {bbox}")
    if not (-90 <= minlat < maxlat <= 90):
        raise InputError(f"bbox latitudes must satisfy -90 <= min < max <= 90: {bbox}")
    tile = Tile(*(round(v, DECIMALS) for v in bbox))
    if not (tile.width > 0 and tile.height > 0):  # a task searching nothing, failed at run
        raise InputError(f"bbox sides must be at least 1e-{DECIMALS} degrees: {bbox}")
    return tile


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """`MINLON,MINLAT,MAXLON,MAXLAT` as typed by an operator."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise InputError(
            f"bbox must be MINLON,MINLAT,MAXLON,MAXLAT numbers, got {text!r}"
        ) from None
    if len(values) != 4:
        raise InputError(f"bbox must have 4 numbers (MINLON,MINLAT,MAXLON,MAXLAT), got {text!r}")
    tile = check_bbox((values[0], values[1], values[2], values[3]))
    return tile.bounds()


def plan_tiles(region: Tile, side: float = TILE_SIDE) -> list[Tile]:
    """Cut a region into tiles of at most `side`; a huge one into at most MAX_FANOUT coarse ones.

    Coarse tiles are not searchable and are cut again when their own task runs, so a
    continent becomes a tree of tasks instead of millions of rows at submit time.
    """
    nx = max(1, math.ceil(region.width / side - 1e-9))
    ny = max(1, math.ceil(region.height / side - 1e-9))
    side = math.isqrt(MAX_FANOUT)
    if nx * ny > MAX_FANOUT:
        nx, ny = min(nx, side), min(ny, side)
    return grid(region, nx, ny)


def refusal_side(tile: Tile) -> float | None:
    """The tile side to try after the search refused this tile; None if not worth it.

    Over the per-side reading's size, that reading; under it, half the longest side,
    down to MIN_REFUSED_SIDE (a tile refused that small fails instead).
    """
    longest = max(tile.width, tile.height)
    if longest > PER_SIDE_TILE + 1e-9:
        return PER_SIDE_TILE
    half = round(longest / 2, DECIMALS)
    return half if half >= MIN_REFUSED_SIDE else None


def grid(region: Tile, nx: int, ny: int) -> list[Tile]:
    """`nx` by `ny` tiles sharing exact (rounded) edges, covering `region` exactly."""
    xs = _edges(region.minlon, region.maxlon, nx)
    ys = _edges(region.minlat, region.maxlat, ny)
    return [Tile(xs[i], ys[j], xs[i + 1], ys[j + 1]) for j in range(ny) for i in range(nx)]


def quadrants(tile: Tile) -> list[Tile]:
    """The four quarters of a tile (a full search result means there may be more)."""
    return grid(tile, 2, 2)


def _edges(low: float, high: float, n: int) -> list[float]:
    step = (high - low) / n
    inner = [round(low + k * step, DECIMALS) for k in range(1, n)]
    return [low, *inner, high]


def _fmt(value: float) -> str:
    text = f"{value:.{DECIMALS}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def tiling_summary(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """How a region was tiled, from its tile tasks' results: tiles searched, the sides that
    worked, and how many tiles were cut, and why (refused as too large, at the cap, timed
    out, too wide)."""
    searched = [r for r in results if "returned" in r]
    cuts = Counter(str(r["why"]) for r in results if "why" in r)
    return {
        "tiles_searched": len(searched),
        "images_returned": sum(int(r["returned"]) for r in searched),
        "sides": sorted({float(r["side"]) for r in searched if "side" in r}),
        "cut": dict(sorted(cuts.items())),
        "capped": sum(1 for r in results if r.get("capped")),
    }
