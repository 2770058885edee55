"""Web Mercator geometry for the dashboard's coverage map, so slippy-map tiles line up
under its points (the tiles are drawn in this projection, not in plain lon/lat)."""

from __future__ import annotations

import math
from dataclasses import dataclass

MAP_WIDTH = 600
MIN_HEIGHT, MAX_HEIGHT = 120.0, 600.0
MAX_TILES = 16  # a handful of requests a reload, as tile servers' usage policies ask
MAX_ZOOM = 18
MAX_LAT = 85.05112878  # where Web Mercator ends
TILE_CREDIT = (
    "© <a href='https://www.openstreetmap.org/copyright' rel=noreferrer>"
    "OpenStreetMap</a> contributors"
)


def world_x(lon: float) -> float:
    """Longitude as a fraction of the world's width, 0 at 180° W."""
    return (lon + 180.0) / 360.0


def world_y(lat: float) -> float:
    """Latitude as a fraction of the Mercator world's height, 0 at the top."""
    sin = math.sin(math.radians(max(-MAX_LAT, min(MAX_LAT, lat))))
    return 0.5 - math.log((1 + sin) / (1 - sin)) / (4 * math.pi)


def tile_url(template: str, zoom: int, x: int, y: int) -> str:
    return template.replace("{z}", str(zoom)).replace("{x}", str(x)).replace("{y}", str(y))


@dataclass(frozen=True)
class MapView:
    """A window on the Mercator world (x0, y0 its top left, in world fractions), drawn
    ``scale`` SVG units per world width, MAP_WIDTH wide."""

    x0: float
    y0: float
    scale: float
    height: float

    @classmethod
    def around(cls, south: float, north: float, west: float, east: float) -> MapView:
        """A view holding the box with a 5% margin, its height kept between the bounds by
        widening the box the other way (the same scale on both axes, as tiles need)."""
        x0, x1 = world_x(west), world_x(east)
        y0, y1 = world_y(north), world_y(south)
        pad = max(x1 - x0, y1 - y0) * 0.05 or 1e-7
        x0, x1, y0, y1 = x0 - pad, x1 + pad, y0 - pad, y1 + pad
        scale = MAP_WIDTH / (x1 - x0)
        height = (y1 - y0) * scale
        if height < MIN_HEIGHT:
            grow = (MIN_HEIGHT / scale - (y1 - y0)) / 2
            y0 -= grow
            height = MIN_HEIGHT
        elif height > MAX_HEIGHT:
            scale = MAX_HEIGHT / (y1 - y0)
            x0 -= (MAP_WIDTH / scale - (x1 - x0)) / 2
            height = MAX_HEIGHT
        return cls(x0, y0, scale, height)

    def xy(self, lat: float, lon: float) -> tuple[float, float]:
        return (world_x(lon) - self.x0) * self.scale, (world_y(lat) - self.y0) * self.scale

    def tile_box(self, zoom: int, x: int, y: int) -> tuple[float, float, float]:
        """Where tile (x, y) of ``zoom`` is drawn: its left, top and side in SVG units."""
        side = self.scale / 2**zoom
        return (x / 2**zoom - self.x0) * self.scale, (y / 2**zoom - self.y0) * self.scale, side

    def tiles(self) -> tuple[int, list[tuple[int, int]]]:
        """The deepest zoom whose tiles covering the view number at most MAX_TILES, and them."""
        x1, y1 = self.x0 + MAP_WIDTH / self.scale, self.y0 + self.height / self.scale
        for zoom in range(MAX_ZOOM, -1, -1):
            n = 2**zoom
            xs = range(max(0, math.floor(self.x0 * n)), min(n - 1, math.floor(x1 * n)) + 1)
            ys = range(max(0, math.floor(self.y0 * n)), min(n - 1, math.floor(y1 * n)) + 1)
            if len(xs) * len(ys) <= MAX_TILES:
                return zoom, [(x, y) for y in ys for x in xs]
        return 0, [(0, 0)]
