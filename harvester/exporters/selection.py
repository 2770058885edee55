"""Which stored images an export takes, and the headings it gives them: pure functions.

Thinning and heading interpolation follow mapillary_tools: an image closer than
`min_distance` metres to the previous *kept* image of its sequence, and turned by no more
than `duplicate_angle` degrees (or with a heading unknown), is dropped; a missing heading is
the bearing to the next image of the sequence (the last image takes the one before it).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from harvester.db.exports import StoredImage
from harvester.exporters.capture import capture_key, captured_between
from harvester.exporters.geo import angle_between, bearing_deg, distance_m
from harvester.licences import commercial_ok, derivatives_ok, license_matches


@dataclass(frozen=True)
class Item:
    """One image on its way out: the stored record and what the export decided about it."""

    image: StoredImage
    heading: float | None
    heading_interpolated: bool = False

    @property
    def record(self) -> dict[str, Any]:
        return self.image.record

    @property
    def lat(self) -> float | None:
        value = self.record["lat"]
        return None if value is None else float(value)

    @property
    def lon(self) -> float | None:
        value = self.record["lon"]
        return None if value is None else float(value)


@dataclass(frozen=True)
class Filters:
    licenses: tuple[str, ...] = ()
    commercial_ok: bool = False
    derivatives_ok: bool = False
    bbox: tuple[float, float, float, float] | None = None  # minlon, minlat, maxlon, maxlat
    since: datetime | None = None  # as written: UTC for UTC times, else the wall clock
    until: datetime | None = None
    pano_only: bool = False
    min_distance: float | None = None
    duplicate_angle: float = 5.0
    interpolate_headings: bool = False
    near_duplicates: int | None = None  # Hamming distance; None keeps them

    def describe(self) -> list[str]:
        """`name=value` for each filter in force, for README.txt and the summary line."""
        return [
            f"{f.name}={getattr(self, f.name)}"
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != f.default
        ]


def select_items(
    images: Iterable[StoredImage],
    filters: Filters,
    near_duplicate_drop: Callable[[Sequence[Item], int], list[Item]] | None = None,
) -> list[Item]:
    """Record filters, then headings, then thinning per sequence, then near-duplicates."""
    items = [Item(image, _float(image.record["heading"])) for image in images]
    items = [item for item in items if _keeps(item, filters)]
    if filters.interpolate_headings:
        items = [i for seq in _sequences(items) for i in interpolate_headings(seq)]
    if filters.min_distance is not None:
        items = [
            i
            for seq in _sequences(items)
            for i in thin(seq, filters.min_distance, filters.duplicate_angle)
        ]
    if filters.near_duplicates is not None and near_duplicate_drop is not None:
        items = near_duplicate_drop(items, filters.near_duplicates)
    return sorted(items, key=lambda i: (i.record["provider"], i.record["provider_id"]))


def _keeps(item: Item, f: Filters) -> bool:
    record = item.record
    name, url = item.image.licence
    if f.licenses and not license_matches(f.licenses, record["license_id"], name, url):
        return False
    if f.commercial_ok and not commercial_ok(name, url):
        return False
    if f.derivatives_ok and not derivatives_ok(name, url):
        return False
    if f.bbox is not None:
        lat, lon = item.lat, item.lon
        minlon, minlat, maxlon, maxlat = f.bbox
        if lat is None or lon is None or not (minlon <= lon <= maxlon and minlat <= lat <= maxlat):
            return False
    if not captured_between(record, f.since, f.until):
        return False
    return not (f.pano_only and not record["is_pano"])


def _sequences(items: Sequence[Item]) -> list[list[Item]]:
    """Items by sequence, each in capture order; an image without a sequence stands alone."""
    groups: dict[Any, list[Item]] = defaultdict(list)
    for item in items:
        key = item.record["sequence_id"] or ("alone", item.record["id"])
        groups[key].append(item)
    return [sorted(group, key=_capture_order) for _, group in sorted(groups.items(), key=_by_key)]


def _by_key(entry: tuple[Any, list[Item]]) -> str:
    return str(entry[0])


def _capture_order(item: Item) -> tuple[str, str]:
    return (capture_key(item.record), str(item.record["provider_id"]))


def interpolate_headings(sequence: Sequence[Item]) -> list[Item]:
    """Fill missing headings with the bearing to the next located image (the last: the
    bearing from the one before); headings the provider gave are kept."""
    located = [(i, i.lat, i.lon) for i in sequence if i.lat is not None and i.lon is not None]
    bearings: dict[int, float] = {}
    for (here, lat1, lon1), (_, lat2, lon2) in itertools.pairwise(located):
        if (lat1, lon1) != (lat2, lon2):
            bearings[id(here)] = bearing_deg(lat1, lon1, lat2, lon2)
    located_items = [i for i, _, _ in located]
    if len(located_items) >= 2 and id(located_items[-2]) in bearings:
        bearings[id(located_items[-1])] = bearings[id(located_items[-2])]
    return [
        dataclasses.replace(item, heading=bearings[id(item)], heading_interpolated=True)
        if item.heading is None and id(item) in bearings
        else item
        for item in sequence
    ]


def thin(sequence: Sequence[Item], min_distance: float, duplicate_angle: float) -> list[Item]:
    """Drop each image within `min_distance` m and `duplicate_angle` degrees of the previous
    kept image of its sequence (an unknown heading counts as within)."""
    kept: list[Item] = []
    for item in sequence:
        previous = kept[-1] if kept else None
        if previous is None or not _too_close(previous, item, min_distance, duplicate_angle):
            kept.append(item)
    return kept


def _too_close(a: Item, b: Item, min_distance: float, duplicate_angle: float) -> bool:
    if a.lat is None or a.lon is None or b.lat is None or b.lon is None:
        return False
    if distance_m(a.lat, a.lon, b.lat, b.lon) >= min_distance:
        return False
    if a.heading is None or b.heading is None:
        return True
    return angle_between(a.heading, b.heading) <= duplicate_angle


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
