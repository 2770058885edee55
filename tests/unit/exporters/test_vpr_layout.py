"""VPR file names and geographic splits, checked against the `utm` package."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import random
import re
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy
import pytest
import utm
from test_selection import START, image

from harvester.db.exports import Hit, StoredImage
from harvester.errors import InputError
from harvester.exporters.geo import distance_m
from harvester.exporters.output import ExportFolder
from harvester.exporters.selection import Item
from harvester.exporters.vpr import (
    GALLERY,
    QUERIES,
    SPLITS,
    VprOptions,
    _at,
    _coord,
    cell_of,
    export_vpr,
    parse_vpr_name,
    place_items,
    split_of,
    summary,
    vpr_name,
    warnings,
    zones_of,
)
from harvester.storage.local import LocalStorage

PLACES = [
    (45.4642035, 9.189982),  # Milan
    (-33.8688197, 151.2092955),  # Sydney: southern hemisphere, east
    (40.7127753, -74.0059728),  # New York: west
    (64.146582, -21.9426354),  # Reykjavik
    (0.0000049, -0.0000049),  # next to null island: signs of tiny values
    (-54.8019121, -68.3029511),  # Ushuaia
]


@pytest.mark.parametrize(("lat", "lon"), PLACES)
def test_names_parse_back_to_the_position_and_to_utm(lat: float, lon: float):
    when = datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)
    name = vpr_name(lat, lon, pano_id="123", heading=271.9, timestamp=when, note="mapillary")
    fields = parse_vpr_name(name)
    assert abs(float(fields["lat"]) - lat) <= 1e-5 and abs(float(fields["lon"]) - lon) <= 1e-5
    east, north, zone, letter = utm.from_latlon(lat, lon)
    assert float(fields["east"]) == pytest.approx(east, abs=0.005)  # rounded to 2 decimals
    assert float(fields["north"]) == pytest.approx(north, abs=0.005)
    assert (int(fields["zone_number"]), fields["zone_letter"]) == (zone, letter)
    assert fields["zone_number"] == f"{zone:02d}"
    assert len(fields["east"].split(".")[1]) == 2 and len(fields["lat"].split(".")[1]) == 5
    assert (fields["heading"], fields["timestamp"]) == ("271", "20210304_050607")
    assert fields["pano_id"] == "123" and fields["note"] == "mapillary"
    assert fields["tile_num"] == fields["pitch"] == fields["roll"] == fields["height"] == ""


def test_the_name_has_the_documented_shape():
    name = vpr_name(45.4642035, 9.189982)
    assert re.fullmatch(r"@\d{7}\.\d{2}@\d{7}\.\d{2}@32@T@045\.46420@0009\.18998@{9}\.jpg", name)
    assert vpr_name(-33.8688197, -74.0059728).split("@")[5:7] == ["-33.86882", "-074.00597"]


@pytest.mark.parametrize(
    ("value", "left", "right", "text"),
    [
        # The doctests of the downloader's util.py since May 2024 (4fedc82; they call a
        # format_coord2, so they never ran there), and of its 2021 one.
        (1.1, 3, 3, "001.100"),
        (-0.12345, 3, 3, "-00.123"),
        (-0.123, 5, 5, "-0000.12300"),
        (-0.123, 3, 3, "-00.123"),
        # Rounded as its f'{float(num):0={left+right+1}.{right}f}' rounds; its 2021 one cut
        # (0151.21529, 0334900.26, -33.86881).
        (151.215297, 4, 5, "0151.21530"),
        (334900.268, 7, 2, "0334900.27"),
        (-33.8688197, 3, 5, "-33.86882"),
        (-74.0059728, 4, 5, "-074.00597"),  # the sign is one of the `left` characters
        (2.675, 1, 2, "2.67"),  # 2.675 is 2.67499999... in binary
        # Under 1e-4, which str() writes with an exponent: its 2021 one failed (ValueError)
        # or wrote 004.9e-06; a sign that rounds to zero stays, as its f-string keeps it.
        (-0.000001, 3, 5, "-00.00000"),
        (0.00005, 3, 5, "000.00005"),
        (0.0000049, 3, 5, "000.00000"),
        (-0.0, 3, 5, "-00.00000"),
    ],
)
def test_numbers_are_written_as_gmbertons_format_coord_writes_them(
    value: float, left: int, right: int, text: str
) -> None:
    assert _coord(value, left, right) == text


def test_a_southern_and_western_name_is_the_downloaders_name() -> None:
    # VPR-datasets-downloader's get_dst_image_name(-34.6037, -58.3816, pano_id="42",
    # heading=90, timestamp="20190101_123000", note="mapillary"), UTM from the same package.
    east, north, zone, letter = utm.from_latlon(-34.6037, -58.3816)
    assert (zone, letter) == (21, "H")
    name = vpr_name(-34.6037, -58.3816, pano_id="42", heading=90.0, note="mapillary",
                    timestamp=datetime(2019, 1, 1, 12, 30, tzinfo=UTC))  # fmt: skip
    assert (f"{east:.3f}", f"{north:.3f}") == ("373317.502", "6170036.171")
    assert name == (
        "@0373317.50@6170036.17@21@H@-34.60370@-058.38160@42@@090@@@@20190101_123000@mapillary@.jpg"
    )


def _scatter(n: int, seed: int = 1) -> list[Item]:
    rng = random.Random(seed)
    items = []
    for i in range(n):
        lat, lon = 45.0 + rng.random() * 0.02, 9.0 + rng.random() * 0.03
        items.append(Item(image(i, lat=lat, lon=lon, sequence_id=f"s{i % 7}"), None))
    return items


def test_splits_are_disjoint_in_space_and_seeded():
    items = _scatter(3000)
    placed = place_items(items, VprOptions(cell_m=100, ratios=(0.6, 0.2, 0.2), seed=3)).placed
    cells: dict[tuple[int, str, int, int], set[str]] = defaultdict(set)
    for entry in placed:
        cells[cell_of(entry.item, 100)].add(entry.split)
    assert all(len(splits) == 1 for splits in cells.values())
    again = place_items(items, VprOptions(cell_m=100, ratios=(0.6, 0.2, 0.2), seed=3)).placed
    assert [(p.split, p.name) for p in again] == [(p.split, p.name) for p in placed]
    other = place_items(items, VprOptions(cell_m=100, ratios=(0.6, 0.2, 0.2), seed=4)).placed
    assert [p.split for p in other] != [p.split for p in placed]


def test_images_that_arrive_later_move_no_image_placed_before():
    items = _scatter(3000)
    options = VprOptions(cell_m=100, ratios=(0.6, 0.2, 0.2), seed=3)
    before = {p.item.record["id"]: p.split for p in place_items(items[:1000], options).placed}
    after = {p.item.record["id"]: p.split for p in place_items(items, options).placed}
    # One may be left out, now near an image of a split kept first that arrived: never moved.
    assert {i: after[i] for i in before if i in after} == {
        i: before[i] for i in after if i in before
    }
    assert len(set(before) & set(after)) > 0.6 * len(before)


def _east_north(names: list[str]) -> numpy.ndarray:
    """The UTM metres GeoWarp reads from names: easting and northing alone."""
    fields = [parse_vpr_name(name) for name in names]
    return numpy.array([(float(f["east"]), float(f["north"])) for f in fields]).reshape(-1, 2)


def _nearest(points: numpy.ndarray, others: numpy.ndarray) -> numpy.ndarray:
    """For each point, the distance to the nearest of `others` (all pairs: a check)."""
    return numpy.sqrt(((points[:, None, :] - others[None, :, :]) ** 2).sum(-1)).min(1)


def test_no_place_is_in_two_splits_test_is_whole_val_loses_only_images_near_test():
    items = _scatter(3000)
    # No pair roles: all are the gallery, so no query is left out (for want of a gallery).
    options = VprOptions(cell_m=100, seed=3, queries_by="pairs")
    placement = place_items(items, options)
    at = {s: _east_north([p.name for p in placement.placed if p.split == s]) for s in SPLITS}
    assert all(len(points) for points in at.values())
    assert _nearest(at["val"], at["train"]).min() > 25
    assert _nearest(at["test"], at["train"]).min() > 25
    assert _nearest(at["test"], at["val"]).min() > 25
    # Test keeps every image of its cells; val and train lose only those near a kept image
    # of a split kept before theirs (test, then val).
    unbuffered = place_items(items, dataclasses.replace(options, buffer_m=0)).placed
    kept = {p.name for p in placement.placed}
    gone = {s: [p.name for p in unbuffered if p.split == s and p.name not in kept] for s in SPLITS}
    assert not gone["test"] and len(at["test"]) == sum(p.split == "test" for p in unbuffered)
    assert placement.near == {"val": len(gone["val"]), "train": len(gone["train"])}
    assert len(gone["val"]) > 10 and len(gone["train"]) > 100
    assert _nearest(_east_north(gone["val"]), at["test"]).max() <= 25 + 0.01  # names: 2 decimals
    kept_before = numpy.concatenate([at["val"], at["test"]])
    assert _nearest(_east_north(gone["train"]), kept_before).max() <= 25 + 0.01
    assert len(placement.placed) + len(gone["val"]) + len(gone["train"]) == len(items)
    assert not place_items(items, VprOptions(cell_m=100, seed=3, buffer_m=0)).near
    assert not placement.unfound


def _straddling(points: Callable[[int], list[tuple[float, float]]]) -> list[Item]:
    """The first pair of points `points(k)` gives whose 100 m cells are in two splits."""
    for k in range(1000):
        pair = [Item(image(n, lat=lat, lon=lon), None) for n, (lat, lon) in enumerate(points(k))]
        if len({split_of(cell_of(i, 100), (0.6, 0.2, 0.2), 0) for i in pair}) == 2:
            return pair
    raise AssertionError("no pair of points in two splits")


@pytest.mark.parametrize(
    "points",
    [
        lambda k: [(45 + k / 1000, 12 - 6e-5), (45 + k / 1000, 12 + 6e-5)],  # zones 32 | 33
        lambda k: [(-4e-5, 9 + k / 1000), (4e-5, 9 + k / 1000)],  # the equator, in zone 32
        lambda k: [(60 + k / 1000, 3 - 6e-5), (60 + k / 1000, 3 + 6e-5)],  # 31V | Norway's 32V
    ],
    ids=["zone-edge", "equator", "norway"],
)
def test_two_images_either_side_of_a_zone_edge_or_the_equator_are_near(
    points: Callable[[int], list[tuple[float, float]]],
) -> None:
    pair = _straddling(points)
    assert distance_m(*_at(pair[0]), *_at(pair[1])) < 10
    assert cell_of(pair[0], 100)[:2] != cell_of(pair[1], 100)[:2], "another zone or band"
    placement = place_items(pair, VprOptions(cell_m=100))
    assert len(placement.placed) == 1 and sum(placement.near.values()) == 1
    assert len(place_items(pair, VprOptions(cell_m=100, buffer_m=0)).placed) == 2


def test_a_cells_split_is_the_documented_hash_of_the_seed_and_the_cell():
    # README: the first 8 bytes of sha256("SEED:ZONE:LETTER:E:N"), over 2**64, in 0..1.
    for seed, cell in [
        (0, (32, "T", 5148, 50345)),
        (7, (21, "H", 3733, 61700)),
        (0, (1, "N", 0, 0)),
    ]:
        text = f"{seed}:{cell[0]}:{cell[1]}:{cell[2]}:{cell[3]}".encode()
        point = int.from_bytes(hashlib.sha256(text).digest()[:8], "big") / 2**64
        expected = "train" if point < 0.6 else "val" if point < 0.8 else "test"
        assert split_of(cell, (0.6, 0.2, 0.2), seed) == expected
        assert split_of(cell, (3, 1, 1), seed) == expected, "ratios are shares of their sum"


MANY_CELLS = [(32, "T", east, north) for east in range(100) for north in range(100)]


@pytest.mark.parametrize("ratios", [(0.6, 0.2, 0.2), (0.8, 0.1, 0.1), (1.0, 1.0, 1.0)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shares_of_cells_are_within_three_standard_deviations_of_the_ratios(
    ratios: tuple[float, float, float], seed: int
) -> None:
    # README: with N cells a split of share p gets p*N +- 3*sqrt(p*(1-p)*N) of them.
    splits = Counter(split_of(cell, ratios, seed) for cell in MANY_CELLS)
    n = len(MANY_CELLS)
    for split, ratio in zip(("train", "val", "test"), ratios, strict=True):
        p = ratio / sum(ratios)
        assert abs(splits[split] - p * n) <= 3 * math.sqrt(p * (1 - p) * n), (split, splits)


@pytest.mark.parametrize(
    ("ratios", "only"), [((1, 0, 0), "train"), ((0, 1, 0), "val"), ((0, 0, 1), "test")]
)
def test_a_split_of_ratio_zero_gets_no_cell(ratios: tuple[float, float, float], only: str):
    assert {split_of(cell, ratios, 0) for cell in MANY_CELLS[:2000]} == {only}


def test_splits_are_the_same_in_another_process_whatever_its_hash_seed():
    cells = MANY_CELLS[:300]
    code = (
        "import json, sys; from harvester.exporters.vpr import split_of; "
        "cells = json.load(sys.stdin); "
        "print(json.dumps([split_of(tuple(c), (0.6, 0.2, 0.2), 5) for c in cells]))"
    )
    mine = [split_of(cell, (0.6, 0.2, 0.2), 5) for cell in cells]
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": os.pathsep.join(sys.path)}
        done = subprocess.run(
            [sys.executable, "-c", code], input=json.dumps(cells), env=env,
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert json.loads(done.stdout) == mine


def test_in_each_place_the_earlier_traversal_is_the_gallery():
    # Two traversals of one 300 m street, a year apart, images every 10 m.
    items = []
    for travel, year in ((0, 2019), (1, 2020)):
        for k in range(30):
            when = datetime(year, 6, 1, 12, 0, k, tzinfo=UTC)
            record = image(
                travel * 100 + k,
                lat=45.0 + k * 10 / 111_195,
                lon=9.0,
                captured_at=when,
                sequence_id=f"travel{travel}",
            )
            items.append(Item(record, None))
    placed = place_items(items, VprOptions(cell_m=50, queries_by="time")).placed
    roles = {p.item.record["sequence_id"]: set() for p in placed}
    for p in placed:
        roles[p.item.record["sequence_id"]].add(p.role)
    assert roles == {"travel0": {GALLERY}, "travel1": {QUERIES}}


def _paired(n: int, role: str) -> Item:
    """Image n of a pairs file, on its `role` side, 8 m east of the one before."""
    base = image(n, lat=45.0, lon=9.0 + n * 1e-4)
    hit = Hit("svpr", "pairs-csv p.csv part 1", role, {"pair": n, "other": "x"})
    return Item(StoredImage(base.record, "svpr", base.license_name, None, (hit,)), None)


def test_pair_roles_decide_gallery_and_queries_when_present():
    items = [_paired(i, "database" if i % 2 else "query") for i in range(10)]
    placed = place_items(items, VprOptions()).placed
    assert all(p.role == (GALLERY if p.item.record["id"] % 2 else QUERIES) for p in placed)


def test_auto_takes_a_pairs_files_roles_where_it_gives_one_and_places_the_others_by_time():
    items = [_paired(i, "database" if i % 2 else "query") for i in range(4)]
    # Two traversals of a street 400 m away, a year apart, in no pairs file.
    items += [
        Item(image(100 + 10 * travel + k, lat=45.0 + k * 10 / 111_195, lon=9.005,
                   captured_at=datetime(2019 + travel, 6, 1, tzinfo=UTC),
                   sequence_id=f"travel{travel}"), None)
        for travel in (0, 1) for k in range(5)
    ]  # fmt: skip
    options = VprOptions(cell_m=50, ratios=(1, 0, 0), buffer_m=0)
    placement = place_items(items, options)
    role = {p.item.record["id"]: p.role for p in placement.placed}
    assert len(role) == len(items)
    assert [role[n] for n in range(4)] == [QUERIES, GALLERY, QUERIES, GALLERY]
    assert {role[n] for n in range(100, 105)} == {GALLERY}
    assert {role[n] for n in range(110, 115)} == {QUERIES}
    said = "pairs for the 4 images in a pairs file, time for the 10 others (--queries-by auto)"
    assert placement.rule == said
    # `pairs` makes those others gallery images; auto of one kind of image says which it took.
    only = place_items(items, dataclasses.replace(options, queries_by="pairs"))
    assert {p.role for p in only.placed if p.item.record["id"] >= 100} == {GALLERY}
    assert only.rule == "pairs (--queries-by pairs; the 10 images in no pairs file: gallery)"
    assert place_items(items[:4], options).rule == (
        "pairs (--queries-by auto: every image is in a pairs file)"
    )
    assert place_items(items[4:], options).rule == (
        "time (--queries-by auto: no image is in a pairs file)"
    )


async def test_the_readme_names_the_roles_placing_used_when_paired_images_are_left_out(tmp_path):
    # The only images with pair roles have no position, so the placed ones go by time.
    paired = image(0, lat=None, lon=None)
    hit = Hit("svpr", "pairs-csv p.csv part 1", "query", {"pair": 0, "other": "x"})
    items = [Item(StoredImage(paired.record, "svpr", paired.license_name, None, (hit,)), None)]
    items += [Item(image(n, lat=45.0, lon=9.0 + n * 1e-4), None) for n in range(1, 4)]
    storage = LocalStorage(tmp_path / "root")
    for item in items[1:]:
        storage.write_sync(item.record["path"], b"jpeg")
    folder = ExportFolder.open(tmp_path / "vpr", "vpr", overwrite=False)
    said, _ = await export_vpr(items, folder, storage, VprOptions(), [])
    readme = (tmp_path / "vpr" / "README.txt").read_text()
    assert "Gallery/queries: by time " in readme and "left out 1" in said


def _photos(n: int, seed: int = 1) -> list[Item]:
    """Flickr photos of no sequence, one every 25 m² or so, taken in a random order."""
    rng = random.Random(seed)
    return [
        Item(image(i, lat=45.0 + rng.random() * 0.002, lon=9.0 + rng.random() * 0.003,
                   provider="flickr", sequence_id=None,
                   captured_at=START + timedelta(minutes=rng.randrange(10**6))), None)
        for i in range(n)
    ]  # fmt: skip


@pytest.mark.parametrize("how", ["time", "random"])
def test_an_image_of_no_sequence_is_a_query_by_the_documented_hash_of_the_seed_and_its_id(
    how: str,
) -> None:
    # README: a query when the first 8 bytes of sha256("SEED:PROVIDER:ID") over 2**64 < 0.25.
    items = _photos(2000)
    options = VprOptions(queries_by=how, seed=9, query_fraction=0.25, buffer_m=0)
    placement = place_items(items, options)
    for entry in placement.placed:
        record = entry.item.record
        text = f"9:flickr:{record['provider_id']}".encode()
        point = int.from_bytes(hashlib.sha256(text).digest()[:8], "big") / 2**64
        assert entry.role == (QUERIES if point < 0.25 else GALLERY)
    queries = sum(p.role == QUERIES for p in placement.placed) + placement.unfound
    assert queries == pytest.approx(500, abs=3 * math.sqrt(2000 * 0.25 * 0.75))
    other = place_items(items, dataclasses.replace(options, seed=10)).placed
    assert [p.role for p in other] != [p.role for p in placement.placed]


def test_every_query_has_a_gallery_image_of_its_split_within_25_m_the_others_are_left_out():
    items = _photos(600) + _scatter(300)  # Flickr photos, Mapillary sequences over 2 km
    placement = place_items(items, VprOptions(cell_m=100, buffer_m=0))
    for split in SPLITS:
        gallery = [p.name for p in placement.placed if p.split == split and p.role == GALLERY]
        queries = [p.name for p in placement.placed if p.split == split and p.role == QUERIES]
        assert queries and _nearest(_east_north(queries), _east_north(gallery)).max() <= 25
    # Only those are left out: each query none of its split's gallery images is near.
    placed = {id(p.item) for p in placement.placed}
    gone = [i for i in items if id(i) not in placed]
    assert placement.unfound == len(gone) > 50
    every = place_items(items, VprOptions(cell_m=100, buffer_m=0, positive_m=1e9)).placed
    assert len(every) == len(items), "a query any gallery image can be far from is kept"
    where = {id(p.item): p for p in every}
    for item in gone:
        mine = where[id(item)]
        assert mine.role == QUERIES
        gallery = [p.name for p in every if p.split == mine.split and p.role == GALLERY]
        assert _nearest(_east_north([mine.name]), _east_north(gallery))[0] > 25


def test_roles_of_images_of_no_sequence_stay_when_more_arrive_in_their_cells() -> None:
    items = _photos(1500)
    # With no buffer none can go (the buffer may leave out one an arrival is near: see above).
    options = VprOptions(cell_m=100, buffer_m=0)
    earlier = {p.item.record["id"]: p.relative for p in place_items(items[::2], options).placed}
    later = {p.item.record["id"]: p.relative for p in place_items(items, options).placed}
    assert {i: later[i] for i in earlier} == earlier, "same split, role and name"
    assert len(later) > len(earlier) * 1.5 and any("/queries/" in f for f in earlier.values())


def test_images_in_one_cell_are_within_a_cell_diagonal():
    items = _scatter(500)
    by_cell: dict[object, list[Item]] = defaultdict(list)
    for item in items:
        by_cell[cell_of(item, 100)].append(item)
    for group in by_cell.values():
        a = group[0]
        for b in group[1:]:
            assert distance_m(a.lat, a.lon, b.lat, b.lon) < 100 * 1.5  # type: ignore[arg-type]


async def test_images_without_a_position_are_refused_and_no_folder_is_made(tmp_path):
    items = [Item(image(n, lat=None, lon=None), None) for n in range(3)]
    out = tmp_path / "vpr"
    folder = ExportFolder.open(out, "vpr", overwrite=False)
    with pytest.raises(
        InputError, match=r"none of the 3 images can be placed \(3 with no position\)"
    ):
        await export_vpr(items, folder, LocalStorage(tmp_path / "root"), VprOptions(), [])
    assert not out.exists()


@pytest.mark.parametrize("char", list('<>:"|?*\\/@'))
def test_an_id_with_a_character_windows_forbids_in_names_is_cleaned_and_kept_apart(char: str):
    pano_id = f"street{char}c0000000"
    field = parse_vpr_name(vpr_name(45.0, 9.0, pano_id=pano_id))["pano_id"]
    assert field == "street-c0000000-" + hashlib.sha1(pano_id.encode()).hexdigest()[:12]


@pytest.mark.parametrize(
    ("heading", "field"),
    [(None, ""), (0.0, "000"), (359.99, "359"), (360.0, "000"), (725.5, "005"), (-90.0, "270"),
     (-1e-15, "000")],  # -1e-15 % 360 is 360.0 in floats
)  # fmt: skip
def test_headings_are_whole_degrees_from_0_to_359(heading: float | None, field: str) -> None:
    assert parse_vpr_name(vpr_name(45.0, 9.0, heading=heading))["heading"] == field


@pytest.mark.parametrize(
    ("lat", "lon", "zone"),
    [(0.0, 180.0, "01@N"), (0.0, -180.0, "01@N"), (0.0, 0.0, "31@N"), (-0.0, 0.0, "31@N"),
     (60.0, 5.0, "32@V"), (78.0, 10.0, "33@X"), (84.0, 0.0, "31@X"), (-80.0, 0.0, "31@C")],
)  # fmt: skip
def test_edges_take_the_utm_packages_zones_as_the_downloader_does(
    lat: float, lon: float, zone: str
) -> None:
    # 180 E is zone 1, as -180 (utm < 0.8 said zone 61); Norway's 32V and Svalbard's 33X are
    # the utm package's exceptions, which the downloader takes as they are.
    fields = parse_vpr_name(vpr_name(lat, lon))
    assert f"{fields['zone_number']}@{fields['zone_letter']}" == zone


def _counts(**images: int) -> dict[str, int]:
    """Images per folder, every one of the six named: `train_gallery=8` for train/gallery."""
    folders = {f"{s}/{r}": 0 for s in ("train", "val", "test") for r in (GALLERY, QUERIES)}
    return folders | {key.replace("_", "/"): n for key, n in images.items()}


def test_the_summary_says_when_a_wanted_split_got_no_image() -> None:
    few = _counts(train_gallery=8, train_queries=2, val_gallery=3, val_queries=1)
    said = warnings(few, VprOptions(ratios=(0.6, 0.2, 0.2)), {})
    assert said == [
        "no image fell in test: too few cells for the ratios (a smaller --cell-m makes more)"
    ]
    text = summary(
        few, {"with no position": 1, "train images within 25 m of a test image": 2}, said
    )
    assert text.startswith("test/gallery 0, test/queries 0, train/gallery 8")
    assert text.endswith(
        "; left out 3: 1 with no position, 2 train images within 25 m of a test image"
        "; no image fell in test: too few cells for the ratios (a smaller --cell-m makes more)"
    )
    assert not warnings(few, VprOptions(ratios=(0.7, 0.3, 0.0)), {})  # a 0 ratio wants none
    assert not warnings(_counts(), VprOptions(), {})  # none placed


def test_the_summary_warns_of_a_split_with_no_queries_or_no_gallery() -> None:
    lopsided = _counts(train_gallery=8, train_queries=2, val_gallery=3, test_queries=2)
    assert warnings(lopsided, VprOptions(), {}) == [
        "val has no queries",
        "test has no gallery images",
    ]
    none = _counts(train_gallery=8, val_gallery=3, test_gallery=1)
    assert warnings(none, VprOptions(), {}) == ["train, val and test have no queries"]
    downloaders = {k.replace(GALLERY, "database"): n for k, n in lopsided.items()}
    said = warnings(downloaders, VprOptions(gallery_name="database"), {})
    assert said == ["val has no queries", "test has no gallery images"]


async def _export(tmp_path: Path, items: list[Item], options: VprOptions) -> tuple[Path, str]:
    """A real export of `items` (each stored as a file first) into tmp_path/vpr: the folder
    and the summary."""
    storage = LocalStorage(tmp_path / "root")
    for item in items:
        storage.write_sync(item.record["path"], b"jpeg %d" % item.record["id"])
    out = tmp_path / "vpr"
    folder = ExportFolder.open(out, "vpr", overwrite=True)
    said, _ = await export_vpr(items, folder, storage, options, [])
    folder.finish()
    return out, said


def _folders(out: Path) -> set[str]:
    return {p.relative_to(out).as_posix() for p in (out / "images").glob("*/*") if p.is_dir()}


async def test_every_split_has_a_gallery_and_a_queries_folder_even_with_no_image_in_it(tmp_path):
    # One street, one traversal: every image is in the gallery of train (one cell's split).
    items = [Item(image(n, lat=45.0 + n * 2 / 111_195, lon=9.0), None) for n in range(5)]
    out, said = await _export(tmp_path, items, VprOptions(cell_m=1000, ratios=(1, 0, 0)))
    assert _folders(out) == {f"images/{s}/{r}" for s in ("train", "val", "test")
                             for r in ("gallery", "queries")}  # fmt: skip
    assert len(list(out.glob("images/train/gallery/*.jpg"))) == 5
    assert not list(out.glob("images/*/queries/*.jpg"))
    keeps = sorted(p.relative_to(out).as_posix() for p in out.rglob(".keep"))
    assert keeps == sorted(f"images/{k}/.keep" for k in ("train/queries", "val/gallery",
                           "val/queries", "test/gallery", "test/queries"))  # fmt: skip
    assert all(p.stat().st_size == 0 for p in out.rglob(".keep"))
    assert "train has no queries" in said
    readme = (out / "README.txt").read_text()
    assert "images/{train,val,test}/{gallery,queries}/" in readme
    assert "Warnings:\n  train has no queries\n" in readme


async def test_the_gallery_folders_take_the_downloaders_name_when_asked(tmp_path):
    items = [Item(image(n, lat=45.0 + n * 2 / 111_195, lon=9.0), None) for n in range(5)]
    out, _ = await _export(tmp_path, items, VprOptions(cell_m=1000, gallery_name="database"))
    assert {f.split("/")[2] for f in _folders(out)} == {"database", "queries"}
    assert len(list(out.glob("images/*/database/*.jpg"))) == 5
    assert "images/{train,val,test}/{database,queries}/" in (out / "README.txt").read_text()


async def test_a_folder_whose_last_image_goes_keeps_its_folder_on_the_next_export(tmp_path):
    # Two traversals: the later one's queries, then only the earlier traversal is exported.
    items = [
        Item(image(n, lat=45.0 + (n % 5) * 2 / 111_195, lon=9.0, sequence_id=f"s{n // 5}"), None)
        for n in range(10)
    ]
    options = VprOptions(cell_m=1000, ratios=(1, 0, 0), queries_by="time")
    out, _ = await _export(tmp_path, items, options)
    assert len(list(out.glob("images/train/queries/*.jpg"))) == 5
    out, _ = await _export(tmp_path, items[:5], options)
    assert not list(out.glob("images/train/queries/*.jpg"))
    assert (out / "images/train/queries/.keep").is_file()
    out, _ = await _export(tmp_path, items, options)
    assert not (out / "images/train/queries/.keep").exists()


@pytest.mark.parametrize(
    ("places", "zones"),
    [
        ([(45.0, 11.999), (45.0, 12.001)], "32 north and 33 north"),  # either side of 12 E
        ([(-0.0001, 9.0), (0.0001, 9.0)], "32 south and 32 north"),  # either side of the equator
    ],
)
async def test_the_summary_warns_of_a_split_that_spans_utm_zones(
    tmp_path: Path, places: list[tuple[float, float]], zones: str
) -> None:
    # Three images a place, 2 m apart: GeoWarp would take 33's easting for 32's.
    items = [
        Item(image(n * 3 + k, lat=lat + k * 2 / 111_132, lon=lon), None)
        for n, (lat, lon) in enumerate(places)
        for k in range(3)
    ]
    out, said = await _export(tmp_path, items, VprOptions(ratios=(1, 0, 0), buffer_m=0))
    warning = (
        f"train spans UTM zones {zones}: GeoWarp measures distances by the names' easting and"
        " northing alone, so images of two zones may be taken for neighbours; export one zone"
        " at a time (--bbox)"
    )
    assert warning in said
    assert f"\n  {warning}\n" in (out / "README.txt").read_text().partition("Warnings:")[2]
    _, one = await _export(tmp_path, items[:3], VprOptions(ratios=(1, 0, 0), buffer_m=0))
    assert "spans UTM zones" not in one


def test_a_split_of_many_zones_names_six_then_how_many_more() -> None:
    items = [Item(image(n, lat=10.0, lon=-177.0 + 6 * n), None) for n in range(10)]
    placed = place_items(items, VprOptions(ratios=(1, 0, 0), queries_by="pairs")).placed
    zones = zones_of(placed)
    assert zones["train"] == [f"{n} north" for n in range(1, 7)] + ["4 more"]
    assert zones["val"] == zones["test"] == []
