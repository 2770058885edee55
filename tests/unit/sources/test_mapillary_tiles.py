"""Tiling: legal search boxes that cover a region exactly, and quadrants for full tiles."""

from __future__ import annotations

import random

import pytest

from harvester.errors import InputError
from harvester.sources.mapillary_tiles import (
    MAX_AREA,
    MAX_FANOUT,
    MIN_SIDE,
    Tile,
    check_bbox,
    parse_bbox,
    plan_tiles,
    quadrants,
)

BRUSSELS = Tile(4.2917, 50.8003, 4.4117, 50.9003)  # 0.12 x 0.10: over the area limit


def _covers(region: Tile, tiles: list[Tile], points: int = 2000) -> bool:
    rng = random.Random(1)
    for _ in range(points):
        lon = rng.uniform(region.minlon, region.maxlon)
        lat = rng.uniform(region.minlat, region.maxlat)
        if not any(t.contains(lon, lat) for t in tiles):
            return False
    corners = [(region.minlon, region.minlat), (region.maxlon, region.maxlat)]
    return all(any(t.contains(x, y) for t in tiles) for x, y in corners)


def test_a_region_over_the_area_limit_becomes_legal_tiles_that_cover_it_exactly() -> None:
    tiles = plan_tiles(BRUSSELS)
    assert len(tiles) == 4
    assert all(t.searchable and t.area < MAX_AREA for t in tiles)
    assert sum(t.area for t in tiles) == pytest.approx(BRUSSELS.area)
    assert min(t.minlon for t in tiles) == BRUSSELS.minlon
    assert max(t.maxlat for t in tiles) == BRUSSELS.maxlat
    assert _covers(BRUSSELS, tiles)


def test_neighbouring_tiles_share_exact_edges_so_no_sliver_is_missed() -> None:
    tiles = plan_tiles(Tile(0.0, 0.0, 0.3333333, 0.2))
    lons = {t.minlon for t in tiles} | {t.maxlon for t in tiles}
    assert len(lons) == 5  # 4 columns: 5 distinct edges, each shared by both neighbours
    for tile in tiles:
        right = [t for t in tiles if t.minlon == tile.maxlon and t.minlat == tile.minlat]
        assert right or tile.maxlon == 0.3333333


def test_a_small_region_is_one_tile_equal_to_itself() -> None:
    region = check_bbox((2.35, 48.85, 2.36, 48.86))
    assert plan_tiles(region) == [region]


def test_a_huge_region_becomes_a_bounded_tree_of_coarse_tiles() -> None:
    world = check_bbox((-180, -90, 180, 90))
    level = plan_tiles(world)
    assert len(level) <= MAX_FANOUT and not level[0].searchable
    depth = 1
    tile = level[0]
    while not tile.searchable:
        children = plan_tiles(tile)
        assert len(children) <= MAX_FANOUT
        tile, depth = children[0], depth + 1
    assert depth <= 3


def test_quadrants_halve_a_tile_and_cover_it() -> None:
    tile = Tile(4.3517, 50.8503, 4.4117, 50.9003)
    parts = quadrants(tile)
    assert len(parts) == 4
    assert [p.width for p in parts] == pytest.approx([0.03] * 4)
    assert [p.height for p in parts] == pytest.approx([0.025] * 4)
    assert _covers(tile, parts)


def test_tiles_stop_splitting_at_the_minimum_side() -> None:
    assert Tile(0, 0, 2 * MIN_SIDE, 2 * MIN_SIDE).divisible
    assert not Tile(0, 0, 1.5 * MIN_SIDE, 1).divisible


def test_bbox_param_is_stable_and_round_trips() -> None:
    tile = Tile(4.35, 50.85, 4.36, -0.0)
    assert tile.param() == "4.35,50.85,4.36,0"
    again = Tile.of([4.29170000001, 50.8003, 4.4117, 50.9003])
    assert again == BRUSSELS and again.param() == "4.2917,50.8003,4.4117,50.9003"


@pytest.mark.parametrize(
    "text",
    ["4.4,50.8,4.3,50.9", "4.3,50.9,4.4,50.8", "1,2,3", "a,b,c,d", "0,0,200,1", "nan,0,1,1"],
)
def test_unusable_bboxes_are_refused_with_an_input_error(text: str) -> None:
    with pytest.raises(InputError):
        parse_bbox(text)


def test_an_operator_bbox_is_parsed_with_spaces() -> None:
    assert parse_bbox(" 4.29, 50.80 ,4.41,50.90") == (4.29, 50.8, 4.41, 50.9)
