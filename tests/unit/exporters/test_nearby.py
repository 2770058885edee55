"""The grid that finds images within a radius of others without comparing every pair."""

from __future__ import annotations

import math
import random

from harvester.exporters.nearby import Grid


def test_the_grid_finds_what_every_pair_finds_edge_included() -> None:
    rng = random.Random(4)
    points = [(rng.uniform(-300, 300), rng.uniform(-300, 300)) for _ in range(400)]
    probes = [(rng.uniform(-300, 300), rng.uniform(-300, 300)) for _ in range(400)]
    probes += [(points[0][0] + 25.0, points[0][1]), (points[1][0], points[1][1] - 25.0)]
    grid = Grid(25.0)
    for x, y in points:
        grid.add("zone", x, y)
    for x, y in probes:
        assert grid.near("zone", x, y) == any(math.dist((x, y), p) <= 25 for p in points)
    assert not grid.near("other zone", *points[0]), "planes are apart"
