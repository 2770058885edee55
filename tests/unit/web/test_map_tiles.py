"""The dashboard map's tiles lie under its points: each point is drawn inside the tile that
holds it, whatever the area's size, and a reload asks for a handful of tiles at most."""

from __future__ import annotations

import math

import pytest

from harvester.web.tiles import MAP_WIDTH, MAX_HEIGHT, MAX_TILES, MIN_HEIGHT, MapView

AREAS = {
    "one street": [(50.8503, 4.3517), (50.8506, 4.3525)],
    "a city": [(48.80, 2.25), (48.90, 2.42), (48.86, 2.35)],
    "a long road north": [(35.0, 139.0), (43.0, 141.3)],
    "east to west": [(45.0, -120.0), (45.3, -70.0)],
    "the world": [(-40.0, -170.0), (64.1, 175.0), (0.0, 0.0)],
    "one point": [(36.08, 140.11)],
}


def _tile_of(lat: float, lon: float, zoom: int) -> tuple[int, int]:
    """The slippy-map tile holding a position, by the tile scheme's own formula."""
    n = 2**zoom
    rad = math.radians(lat)
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(rad)) / math.pi) / 2.0 * n)
    return x, y


@pytest.mark.parametrize("name", AREAS)
def test_every_point_is_drawn_inside_its_own_tile(name: str) -> None:
    points = AREAS[name]
    lats, lons = [p[0] for p in points], [p[1] for p in points]
    view = MapView.around(min(lats), max(lats), min(lons), max(lons))
    assert MIN_HEIGHT <= view.height <= MAX_HEIGHT
    zoom, tiles = view.tiles()
    assert 1 <= len(tiles) <= MAX_TILES
    for lat, lon in points:
        x, y = view.xy(lat, lon)
        assert 0 <= x <= MAP_WIDTH and 0 <= y <= view.height, (lat, lon, x, y)
        tile = _tile_of(lat, lon, zoom)
        assert tile in tiles, (tile, tiles)
        left, top, side = view.tile_box(zoom, *tile)
        assert left - 1e-6 <= x <= left + side + 1e-6 and top - 1e-6 <= y <= top + side + 1e-6


def test_a_small_area_gets_street_level_tiles_and_the_world_gets_few() -> None:
    street = MapView.around(50.8503, 50.8506, 4.3517, 4.3525)
    world = MapView.around(-40.0, 64.1, -170.0, 175.0)
    assert street.tiles()[0] >= 15 and world.tiles()[0] <= 2
