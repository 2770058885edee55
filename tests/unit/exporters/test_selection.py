"""Thinning, heading interpolation and record filters on synthetic sequences."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from harvester.db.exports import RECORD_COLUMNS, Hit, StoredImage
from harvester.exporters.geo import bearing_deg, distance_m
from harvester.exporters.selection import Filters, Item, interpolate_headings, select_items, thin

START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
M_PER_DEG_LAT = math.pi * 6_371_008.8 / 180


def image(n: int, *, lat: float, lon: float, heading: float | None = None, **extra: Any):
    record: dict[str, Any] = dict.fromkeys(RECORD_COLUMNS)
    record.update(
        id=n,
        provider="mapillary",
        provider_id=str(1000 + n),
        lat=lat,
        lon=lon,
        heading=heading,
        captured_at=START + timedelta(seconds=n),
        sequence_id="seq",
        license_id="CC-BY-SA-4.0",
        path=f"mapillary/seq/00000/{1000 + n}.jpg",
        is_pano=False,
    )
    record.update(extra)
    hits = (Hit("c", "q", None, None),)
    return StoredImage(record, "c", "CC BY-SA 4.0", None, hits)


def north(n: int, metres: float, **extra: Any) -> StoredImage:
    """Image n of a track going due north from (50, 4), `metres` from its start."""
    return image(n, lat=50.0 + metres / M_PER_DEG_LAT, lon=4.0, **extra)


def test_distance_and_bearing_match_known_values():
    assert distance_m(50.0, 4.0, 50.0 + 1 / M_PER_DEG_LAT, 4.0) == pytest.approx(1.0, rel=1e-9)
    assert bearing_deg(50.0, 4.0, 50.1, 4.0) == pytest.approx(0.0, abs=1e-9)
    assert bearing_deg(0.0, 4.0, 0.0, 4.1) == pytest.approx(90.0, abs=1e-9)
    assert bearing_deg(50.1, 4.0, 50.0, 4.0) == pytest.approx(180.0, abs=1e-9)


def test_thinning_drops_images_closer_than_the_distance_to_the_last_kept_one():
    # Positions 0, 0.4, 0.8, 1.2, 3.0, 3.5 m, all facing north: with 1 m, keep 0, 1.2, 3.0.
    seq = [Item(north(i, m, heading=0.0), 0.0) for i, m in enumerate([0, 0.4, 0.8, 1.2, 3.0, 3.5])]
    kept = thin(seq, min_distance=1.0, duplicate_angle=5.0)
    assert [i.record["id"] for i in kept] == [0, 3, 4]


def test_thinning_keeps_a_close_image_that_turned_more_than_the_angle():
    headings = [0.0, 3.0, 40.0, 41.0]  # 3 degrees: a duplicate; 40: a new view; 41: duplicate
    seq = [Item(north(i, 0.1 * i, heading=h), h) for i, h in enumerate(headings)]
    assert [i.record["id"] for i in thin(seq, 1.0, 5.0)] == [0, 2]
    assert [i.record["id"] for i in thin(seq, 1.0, 50.0)] == [0]


def test_thinning_by_distance_alone_when_headings_are_unknown():
    seq = [Item(north(i, m), None) for i, m in enumerate([0, 0.6, 1.1, 1.7, 2.3])]
    assert [i.record["id"] for i in thin(seq, 1.0, 5.0)] == [0, 2, 4]


def test_interpolated_headings_point_to_the_next_image_and_the_last_repeats():
    # An L-shaped track: north 10 m, north 10 m, then east 10 m.
    a = image(0, lat=50.0, lon=4.0)
    b = image(1, lat=50.0 + 10 / M_PER_DEG_LAT, lon=4.0)
    c = image(2, lat=50.0 + 20 / M_PER_DEG_LAT, lon=4.0)
    d = image(3, lat=50.0 + 20 / M_PER_DEG_LAT, lon=4.0 + 10 / (M_PER_DEG_LAT * math.cos(0.87)))
    items = interpolate_headings([Item(x, None) for x in (a, b, c, d)])
    headings = [i.heading for i in items]
    assert headings[0] == pytest.approx(0.0, abs=1e-6)
    assert headings[1] == pytest.approx(0.0, abs=1e-6)
    assert headings[2] == pytest.approx(90.0, abs=0.01)
    assert headings[3] == headings[2]  # the last image takes the previous bearing
    assert all(i.heading_interpolated for i in items)


def test_interpolation_keeps_headings_the_provider_gave():
    items = [Item(north(0, 0), 123.0), Item(north(1, 5), None)]
    out = interpolate_headings(items)
    assert (out[0].heading, out[0].heading_interpolated) == (123.0, False)
    assert out[1].heading == pytest.approx(0.0, abs=1e-6) and out[1].heading_interpolated


def test_select_items_interpolates_then_thins_per_sequence_in_capture_order():
    images = [north(i, m) for i, m in enumerate([0.0, 0.3, 2.0])]
    images += [image(10 + i, lat=51.0, lon=4.0, sequence_id="other") for i in range(3)]
    items = select_items(reversed(images), Filters(min_distance=1.0, interpolate_headings=True))
    assert sorted(i.record["id"] for i in items) == [0, 2, 10]


@pytest.mark.parametrize(
    ("filters", "kept"),
    [
        (Filters(licenses=("cc by-sa 4.0",)), [0, 1, 2]),
        (Filters(licenses=("4",)), []),
        (Filters(commercial_ok=True), [0, 1, 2]),
        (Filters(bbox=(3.9, 49.9, 4.1, 50.00001)), [0]),
        (Filters(since=START + timedelta(seconds=1)), [1, 2]),
        (Filters(until=START + timedelta(seconds=1)), [0, 1]),
        (Filters(pano_only=True), [2]),
    ],
)
def test_record_filters(filters: Filters, kept: list[int]):
    images = [north(0, 0), north(1, 10), north(2, 20, is_pano=True)]
    assert [i.record["id"] for i in select_items(images, filters)] == kept


def flickr(n: int, local: str | None) -> StoredImage:
    """A Flickr photo: no UTC capture time, the camera's wall clock to some precision."""
    return image(n, lat=50.0, lon=4.0, provider="flickr", sequence_id=None,
                 captured_at=None, captured_local=local)  # fmt: skip


@pytest.mark.parametrize(
    ("filters", "kept"),
    [
        (Filters(since=datetime(2019, 5, 1)), [0, 1, 2]),
        (Filters(since=datetime(2019, 5, 4, 12, 30)), [0, 1]),
        (Filters(since=datetime(2019, 5, 10)), [0]),  # May as a whole is not surely after
        (Filters(until=datetime(2019, 6, 1)), [1, 2]),
        (Filters(until=datetime(2019, 12, 31, 23, 59, 59, 999999)), [1, 2, 3]),
        # An offset is set aside: the wall clock is compared as written.
        (Filters(since=datetime(2019, 5, 4, 12, 30, tzinfo=timezone(timedelta(hours=5)))), [0, 1]),
        (Filters(since=datetime(1900, 1, 1), until=datetime(2100, 1, 1)), [0, 1, 2, 3]),
    ],
)
def test_time_filters_read_flickr_wall_clocks_to_their_precision(filters: Filters, kept):
    images = [flickr(0, "2020-01-02T03:04:05"), flickr(1, "2019-05-04T12:30:00"),
              flickr(2, "2019-05"), flickr(3, "2019"), flickr(4, None)]  # fmt: skip
    assert [i.record["id"] for i in select_items(images, filters)] == kept


def test_a_bound_without_offset_reads_as_utc_against_utc_capture_times():
    bound = START.replace(tzinfo=None) + timedelta(seconds=1)
    images = [north(0, 0), north(1, 10), north(2, 20)]
    assert [i.record["id"] for i in select_items(images, Filters(since=bound))] == [1, 2]
