"""Which images are within a radius of others, in UTM metres, at a million images: points
are bucketed by the radius, so that a look-up reads the 9 buckets around a point instead of
every point; and a UTM position is put in planes where such distances hold (one plane a zone,
across the equator too, and a point near a zone's edge in the next zone's plane as well)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable

import utm

Utm = tuple[float, float, int, str]  # easting, northing, zone number, latitude band
Plane = tuple[int, float, float]  # zone number, easting, northing from the equator
FALSE_NORTHING_M = 10_000_000.0  # what UTM adds to a southern northing
M_PER_DEG_LAT = 110_574.0  # the fewest metres in a degree of latitude (at the equator)
M_PER_DEG_LON = 111_319.0  # metres in a degree of longitude on the equator, rounded down
MARGIN = 1.01  # UTM's scale is within 0.9996 to 1.001 of the ground's
MIN_BUCKET_M = 1e-3


class Grid:
    """Points of planes, bucketed by `radius` (> 0), or a millimetre if it is less: all
    points within it of a point are in the 9 buckets around that point's."""

    def __init__(self, radius: float) -> None:
        self.radius = radius
        # Buckets may be wider than the radius, not narrower: of 1e-320 m, an easting's
        # index was infinite (an OverflowError), and nothing is placed finer than a mm.
        self._side = max(radius, MIN_BUCKET_M)
        self._buckets: defaultdict[tuple[Hashable, int, int], list[tuple[float, float]]]
        self._buckets = defaultdict(list)

    def __len__(self) -> int:
        return len(self._buckets)

    def _key(self, frame: Hashable, x: float, y: float) -> tuple[Hashable, int, int]:
        return frame, math.floor(x / self._side), math.floor(y / self._side)

    def add(self, frame: Hashable, x: float, y: float) -> None:
        self._buckets[self._key(frame, x, y)].append((x, y))

    def near(self, frame: Hashable, x: float, y: float) -> bool:
        """Whether a point added in `frame` is within the radius of (x, y), edge included."""
        _, col, row = self._key(frame, x, y)
        limit = self.radius**2
        return any(
            (px - x) ** 2 + (py - y) ** 2 <= limit
            for dx in (-1, 0, 1)
            for dy in (-1, 0, 1)
            for px, py in self._buckets.get((frame, col + dx, row + dy), ())
        )


def utm_of(lat: float, lon: float) -> Utm:
    """The `utm` package's position, in Python's types (it gives numpy floats)."""
    east, north, zone, letter = utm.from_latlon(lat, lon)
    return float(east), float(north), int(zone), str(letter)


def plane(position: Utm) -> Plane:
    """A position in its zone's plane: a southern northing less the false northing, so that
    the plane goes on across the equator."""
    east, north, zone, letter = position
    return zone, east, north - FALSE_NORTHING_M if letter < "N" else north


def planes(lat: float, lon: float, position: Utm, radius: float) -> list[Plane]:
    """The point in its zone's plane, then in the plane of each other zone within `radius`
    of it (near an edge; Norway's and Svalbard's zones too), so that two points either side
    of an edge meet in one plane. Zones are rectangles of 3 degrees and more in latitude and
    longitude, so one within the radius holds a corner of the box around the radius."""
    own = plane(position)
    reach = radius * MARGIN
    dlat = reach / M_PER_DEG_LAT
    dlon = reach / (M_PER_DEG_LON * math.cos(math.radians(lat)))  # UTM's 84 N: cos >= 0.1
    corners = [(lat + a, lon + b) for a in (-dlat, dlat) for b in (-dlon, dlon)]
    zones = {utm.latlon_to_zone_number(a, b) for a, b in corners} - {own[0]}
    found = [own]
    for zone in sorted(zones):
        east, north, _, _ = utm.from_latlon(lat, lon, force_zone_number=zone, force_northern=True)
        found.append((zone, float(east), float(north)))
    return found
