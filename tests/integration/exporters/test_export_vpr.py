"""`harvester export --format vpr`: the GeoWarp layout, hard links, README, attribution."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import sqlite3
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import utm
from export_harvest import Harvest, files_by_id, folders_of, rows_of, tree_of

from harvester.cli import main
from harvester.exporters import vpr
from harvester.exporters.vpr import SPLITS, parse_vpr_name


def _vpr(harvest: Harvest, out: Path, *extra: str) -> int:
    argv = harvest.argv(
        "export", "--campaign", "svpr", "--campaign", "street", "--format", "vpr",
        "--out", str(out), "--cell-m", "25", *extra,
    )  # fmt: skip
    return main(argv)


def _left_out(out: Path) -> int:
    """How many images the export left out, as its README.txt says."""
    said = re.search(r"^Left out \((\d+)\):$", (out / "README.txt").read_text(), re.MULTILINE)
    return int(said[1]) if said else 0


def test_vpr_layout_names_every_image_by_its_position_and_links_the_stored_file(
    harvest: Harvest, tmp_path: Path
):
    out = tmp_path / "vpr"
    assert _vpr(harvest, out) == 0
    table_out = tmp_path / "table"
    argv = ("export", "--campaign", "svpr", "--campaign", "street", "--format", "csv")
    assert main(harvest.argv(*argv, "--out", str(table_out))) == 0
    by_id = {r["provider_id"]: r for r in rows_of(table_out / "images.csv")}
    ids = {file: provider_id for provider_id, file in files_by_id(out).items()}
    files = sorted(out.glob("images/*/*/*.jpg"))
    assert len(files) == len(by_id) - _left_out(out) and len(by_id) == 24
    for path in files:
        split, role = path.parent.parent.name, path.parent.name
        assert split in ("train", "val", "test") and role in ("gallery", "queries")
        fields = parse_vpr_name(path.name)
        row = by_id[ids[str(path.relative_to(out))]]
        assert fields["pano_id"].startswith(row["provider_id"].replace(":", "-"))
        lat, lon = float(row["lat"]), float(row["lon"])
        assert abs(float(fields["lat"]) - lat) <= 1e-5 and abs(float(fields["lon"]) - lon) <= 1e-5
        east, north, zone, letter = utm.from_latlon(lat, lon)
        assert fields["east"] == f"{east:010.2f}" and fields["north"] == f"{north:010.2f}"
        assert fields["lat"] == f"{lat:09.5f}" and fields["lon"] == f"{lon:010.5f}"
        assert (int(fields["zone_number"]), fields["zone_letter"]) == (zone, letter)
        stored = harvest.root / row["path"]
        assert os.path.samefile(path, stored), "a hard link to the stored file"
    roles = {(p.parent.name, parse_vpr_name(p.name)["note"]) for p in files}
    assert ("gallery", "mapillary") in roles and ("queries", "mapillary") in roles
    assert folders_of(out / "images") == sorted(
        [*SPLITS, *(f"{s}/{r}" for s in SPLITS for r in ("gallery", "queries"))]
    )
    readme = (out / "README.txt").read_text()
    assert "cells of 25 m" in readme and "by pairs" in readme
    assert "campaigns: svpr, street" in readme
    credits = rows_of(out / "attribution.csv")
    assert sorted(r["file"] for r in credits) == sorted(str(p.relative_to(out)) for p in files), (
        "every exported image has an attribution row"
    )


def test_pair_roles_put_database_and_query_sides_in_their_folders(harvest: Harvest, tmp_path):
    out = tmp_path / "vpr"
    argv = harvest.argv(
        "export", "--campaign", "svpr", "--format", "vpr", "--out", str(out),
        "--queries-by", "pairs",
    )  # fmt: skip
    assert main(argv) == 0
    roles = {parse_vpr_name(p.name)["pano_id"]: p.parent.name for p in out.glob("images/*/*/*.jpg")}
    assert {roles[d.id] for d, _ in harvest.pairs} == {"gallery"}
    assert {roles[q.id] for _, q in harvest.pairs} == {"queries"}


def test_auto_gives_listed_images_their_pair_roles_and_the_others_roles_by_time(
    harvest: Harvest, tmp_path: Path
):
    found = {}
    for how in ("auto", "time", "pairs"):
        assert _vpr(harvest, tmp_path / how, "--queries-by", how) == 0
        found[how] = files_by_id(tmp_path / how)
    street = {how: {k: f for k, f in files.items() if k.startswith("street:")}
              for how, files in found.items()}  # fmt: skip
    assert street["auto"] == street["time"] != street["pairs"], "the URL list's go by time"
    roles = {k: f.split("/")[2] for k, f in found["auto"].items()}
    assert {roles[d.id] for d, _ in harvest.pairs if d.id in roles} == {"gallery"}
    assert {roles[q.id] for _, q in harvest.pairs if q.id in roles} == {"queries"}
    paired = len(found["auto"]) - len(street["auto"])
    assert (
        f"Gallery/queries: by pairs for the {paired} images in a pairs file, time for the"
        f" {len(street['auto'])} others (--queries-by auto).\n"
        in (tmp_path / "auto" / "README.txt").read_text()
    )


def test_the_gallery_folders_take_the_downloaders_name_with_gallery_name_database(
    harvest: Harvest, tmp_path: Path
):
    out = tmp_path / "vpr"
    assert _vpr(harvest, out, "--gallery-name", "database") == 0
    assert {p.parent.name for p in out.glob("images/*/*/*.jpg")} == {"database", "queries"}
    assert folders_of(out / "images") == sorted(
        [*SPLITS, *(f"{s}/{r}" for s in SPLITS for r in ("database", "queries"))]
    )
    assert "{database,queries}" in (out / "README.txt").read_text()
    # An export an older harvester wrote with `database` folders is renamed in place.
    assert _vpr(harvest, out) == 0
    assert _vpr(harvest, tmp_path / "fresh") == 0
    assert tree_of(out) == tree_of(tmp_path / "fresh")
    assert folders_of(out) == folders_of(tmp_path / "fresh")


def test_a_second_vpr_export_changes_nothing_and_a_new_seed_moves_files(
    harvest: Harvest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    out = tmp_path / "vpr"
    assert _vpr(harvest, out) == 0
    capsys.readouterr()
    assert _vpr(harvest, out) == 0
    assert " 0 files added, 0 changed" in capsys.readouterr().out
    assert _vpr(harvest, out, "--seed", "5", "--split", "1,1,1") == 0
    said = capsys.readouterr().out
    assert "removed" in said
    files = list(out.glob("images/*/*/*.jpg"))
    assert len(files) == 24 - _left_out(out), "files of the earlier layout were removed"


def test_copies_are_made_when_links_cannot_be(harvest: Harvest, tmp_path, monkeypatch):
    def no_links(*_args: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    out = tmp_path / "vpr"
    assert _vpr(harvest, out) == 0
    files = list(out.glob("images/*/*/*.jpg"))
    assert files and all(p.stat().st_nlink == 1 for p in files)


def test_two_exports_of_one_harvest_are_byte_identical_whatever_the_hash_seed(
    harvest: Harvest, tmp_path: Path
):
    trees = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"vpr-{hash_seed}"
        argv = harvest.argv("export", *EVERY_CAMPAIGN, "--format", "vpr", "--out", str(out),
                            "--cell-m", str(CELL_M), "--queries-by", "time")  # fmt: skip
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": os.pathsep.join(sys.path)}
        subprocess.run([sys.executable, "-m", "harvester", *argv], env=env, check=True,
                       capture_output=True)  # fmt: skip
        trees.append(tree_of(out))
    assert any("/queries/" in name for name in trees[0]), "roles by time were given"
    assert trees[0] == trees[1], "the same names, README.txt and attribution"


def _harvest_copy(harvest: Harvest, tmp_path: Path) -> Harvest:
    """The harvest with its own database file, for tests that change rows."""
    copy = tmp_path / "copy.db"
    with (
        sqlite3.connect(harvest.database_url.removeprefix("sqlite:///")) as source,
        sqlite3.connect(copy) as target,
    ):
        source.backup(target)
    return dataclasses.replace(harvest, database_url=f"sqlite:///{copy}")


def test_images_beyond_utms_latitudes_are_left_out_each_with_its_reason(
    harvest: Harvest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    mine = _harvest_copy(harvest, tmp_path)
    with sqlite3.connect(mine.database_url.removeprefix("sqlite:///")) as db:
        ids = db.execute(
            "SELECT provider_id FROM images WHERE provider = 'flickr' AND state = 'stored'"
            " ORDER BY provider_id"
        ).fetchall()
        far = {ids[0][0]: (84.5, 10.0), ids[1][0]: (-80.5, -60.0), ids[2][0]: (84.0, 0.0)}
        for provider_id, (lat, lon) in far.items():
            db.execute(
                "UPDATE images SET lat = ?, lon = ? WHERE provider_id = ?", (lat, lon, provider_id)
            )
    out = tmp_path / "vpr"
    argv = ("export", "--campaign", "landmarks", "--format", "vpr", "--out", str(out))
    assert main(mine.argv(*argv)) == 0
    assert "left out 2" in capsys.readouterr().out
    names = {parse_vpr_name(p.name)["pano_id"]: p.name for p in out.glob("images/*/*/*.jpg")}
    assert len(names) == len(ids) - 2
    assert ids[0][0] not in names and ids[1][0] not in names
    assert "@31@X@084.00000@0000.00000@" in names[ids[2][0]], "84 N itself is in UTM"
    readme = (out / "README.txt").read_text()
    for provider_id, (lat, _) in list(far.items())[:2]:
        assert f"flickr '{provider_id}': latitude {lat:g} is outside UTM's" in readme
    credits = {r["provider_id"] for r in rows_of(out / "attribution.csv")}
    assert credits == set(names)


def test_the_summary_counts_the_images_written_and_each_reason_one_was_left_out(
    harvest: Harvest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    mine = _harvest_copy(harvest, tmp_path)
    with sqlite3.connect(mine.database_url.removeprefix("sqlite:///")) as db:
        ids = db.execute(f"SELECT id FROM images WHERE {UNSEQUENCED}").fetchall()
        db.execute("UPDATE images SET lat = NULL, lon = NULL WHERE id = ?", ids[0])
        db.execute("UPDATE images SET lat = 85.0 WHERE id = ?", ids[1])
        stored = db.execute("SELECT count(*) FROM images WHERE state = 'stored'").fetchone()[0]
    out = tmp_path / "vpr"
    argv = ("export", *EVERY_CAMPAIGN, "--format", "vpr", "--cell-m", str(CELL_M))
    assert main(mine.argv(*argv, "--out", str(out))) == 0
    said = capsys.readouterr().out
    files = list(out.glob("images/*/*/*.jpg"))
    assert f"exported {len(files)} of the {stored} images of campaign " in said
    readme = (out / "README.txt").read_text()
    gone = _left_out(out)
    assert gone == stored - len(files) and len(rows_of(out / "attribution.csv")) == len(files)
    assert f"Images: {stored} selected, {len(files)} exported, {gone} left out.\n" in readme
    listed = readme.partition(f"Left out ({gone}):\n")[2].partition("\n\n")[0]
    reasons = [line.strip() for line in listed.splitlines()]
    assert f"left out {gone}: {', '.join(reasons)}" in said
    assert sum(int(r.split()[0]) for r in reasons) == gone
    assert {r.partition(" ")[2] for r in reasons} >= {
        "with no position",
        "at a latitude outside UTM's -80 to 84",
        "train images within 25 m of a val or test image",
        "queries with no gallery image within 25 m",
    }


def test_ids_unfit_for_a_file_name_are_cleaned_kept_apart_and_kept_short(
    harvest: Harvest, tmp_path: Path
):
    mine = _harvest_copy(harvest, tmp_path)
    ids = {
        "street:" + "\U0001f600" * 100: "a list's id of 100 emoji: 400 bytes",
        "street:x\x1b]0;pwned\x07y": "a terminal escape",
        "street:a@b": "the separator",
        "street:a/b": "a path",
        "street:new\nline\u202e": "a line break and a right-to-left override",
        'street:a<b>c"d|e?f*g\\h': "what Windows forbids in a file name",
    }
    with sqlite3.connect(mine.database_url.removeprefix("sqlite:///")) as db:
        rows = db.execute(
            "SELECT id FROM images WHERE provider = 'urls' AND state = 'stored' ORDER BY id"
        ).fetchall()
        for (row_id,), provider_id in zip(rows, ids, strict=False):
            db.execute(
                "UPDATE images SET provider_id = ?, lat = 45.5, lon = 5.5, captured_at = NULL"
                " WHERE id = ?",
                (provider_id, row_id),
            )
    out = tmp_path / "vpr"
    argv = ("export", "--campaign", "street", "--format", "vpr", "--out", str(out))
    assert main(mine.argv(*argv, "--query-fraction", "0")) == 0  # no query lacks a gallery
    files = list(out.glob("images/*/*/*.jpg"))
    assert len(files) == len(rows), "ids that clean to the same text still name two files"
    for path in files:
        assert len(path.name.encode()) <= 255
        assert path.name.isprintable() and not any(c.isspace() for c in path.name)
        assert not set(path.name) & set('<>:"/\\|?*'), "a name Windows can hold"
        parse_vpr_name(path.name)
    by_file = {r["file"]: r["provider_id"] for r in rows_of(out / "attribution.csv")}
    assert set(ids) <= set(by_file.values()), "the attribution keeps each id as it is"


CELL_M = 25
EVERY_CAMPAIGN = ("--campaign", "svpr", "--campaign", "street", "--campaign", "landmarks")


def _cell(lat: float, lon: float) -> tuple[int, str, int, int]:
    east, north, zone, letter = utm.from_latlon(lat, lon)
    return zone, letter, math.floor(east / CELL_M), math.floor(north / CELL_M)


def test_images_that_arrive_in_new_cells_move_no_exported_file_between_splits(
    harvest: Harvest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    mine = _harvest_copy(harvest, tmp_path)
    database = mine.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT id, lat, lon FROM images WHERE state = 'stored' AND lat IS NOT NULL"
        ).fetchall()
        later_cells = sorted({_cell(lat, lon) for _, lat, lon in rows})[::2]
        later = [(i,) for i, lat, lon in rows if _cell(lat, lon) in later_cells]
        db.executemany("UPDATE images SET state = 'queued' WHERE id = ?", later)
    out = tmp_path / "vpr"
    argv = mine.argv("export", *EVERY_CAMPAIGN, "--format", "vpr", "--out", str(out),
                     "--cell-m", str(CELL_M))  # fmt: skip
    assert main(argv) == 0
    before, keeps = files_by_id(out), set(out.rglob(".keep"))
    assert len(before) == len(rows) - len(later) - _left_out(out) and later
    with sqlite3.connect(database) as db:
        db.executemany("UPDATE images SET state = 'stored' WHERE id = ?", later)
    capsys.readouterr()
    assert main(argv) == 0
    said = capsys.readouterr().out
    after = files_by_id(out)
    assert len(after) == len(rows) - _left_out(out)
    # A file stays where it was, or goes: left out, near an image of an earlier split now.
    gone = before.keys() - after.keys()
    assert {k: after[k] for k in before if k in after} == {
        k: before[k] for k in after if k in before
    }
    filled = keeps - set(out.rglob(".keep"))  # folders empty before
    assert f", {len(gone) + len(filled)} removed" in said and len(gone) < len(before) / 4
    assert {f.split("/")[1] for f in after.values()} == {"train", "val", "test"}


def _older_then_now(
    harvest: Harvest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, str], dict[str, str]]:
    """Export as an older harvester did (what `monkeypatch` changed), then into the same
    folder as today: it must hold exactly what a fresh export does, no file or empty folder
    left of the older one. The files by provider id, older and now."""
    out, fresh = tmp_path / "vpr", tmp_path / "fresh"
    assert _vpr(harvest, out) == 0
    older = files_by_id(out)
    monkeypatch.undo()
    assert _vpr(harvest, out) == 0
    assert _vpr(harvest, fresh) == 0
    assert tree_of(out) == tree_of(fresh)
    assert folders_of(out) == folders_of(fresh)
    return older, files_by_id(out)


def test_an_export_split_another_way_is_rearranged_in_place_with_nothing_left_behind(
    harvest: Harvest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A folder an older harvester split otherwise (by the whole campaign's cells) is
    rearranged by the next export: each file moves to its cell's split, none is left."""
    real = vpr.split_of
    moved = {"train": "val", "val": "test", "test": "train"}
    monkeypatch.setattr(vpr, "split_of", lambda *args: moved[real(*args)])
    older, now = _older_then_now(harvest, tmp_path, monkeypatch)
    both = older.keys() & now.keys()  # the buffer leaves out the later split's image
    assert len(both) > len(now) / 2 and all(now[k] != older[k] for k in both), "all moved"


def test_an_export_named_with_colons_is_renamed_in_place_with_nothing_left_behind(
    harvest: Harvest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """URL-list ids (`street:c0000000`) were written with their ':' before it was cleaned."""
    monkeypatch.setattr(vpr, "UNFIT", "@/\\")
    older, now = _older_then_now(harvest, tmp_path, monkeypatch)
    colons = {k for k, file in older.items() if ":" in file}
    assert colons and all(":" not in now[k] for k in colons)


def _utm_by_split(out: Path) -> dict[str, list[tuple[float, float]]]:
    """Each split's images as GeoWarp reads them: easting and northing from the name."""
    found: dict[str, list[tuple[float, float]]] = {"train": [], "val": [], "test": []}
    for path in out.glob("images/*/*/*.jpg"):
        fields = parse_vpr_name(path.name)
        found[path.parent.parent.name].append((float(fields["east"]), float(fields["north"])))
    return found


def _within(points: list[tuple[float, float]], others: list[tuple[float, float]]) -> int:
    return sum(any(math.dist(p, o) <= 25 for o in others) for p in points)


def test_the_buffer_keeps_test_whole_and_leaves_out_val_and_train_images_near_it(
    harvest: Harvest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    argv = ("export", *EVERY_CAMPAIGN, "--format", "vpr", "--cell-m", str(CELL_M))
    assert main(harvest.argv(*argv, "--out", str(tmp_path / "leaky"), "--buffer-m", "0")) == 0
    leaky = _utm_by_split(tmp_path / "leaky")
    assert _within(leaky["val"] + leaky["test"], leaky["train"]), "cells meet at their edges"
    capsys.readouterr()
    out = tmp_path / "vpr"
    assert main(harvest.argv(*argv, "--out", str(out))) == 0
    said = capsys.readouterr().out
    split = _utm_by_split(out)
    assert all(split.values())
    assert not _within(split["val"] + split["test"], split["train"])
    assert not _within(split["test"], split["val"])
    assert sorted(split["test"]) == sorted(leaky["test"]), "test keeps every image"
    assert set(split["val"]) <= set(leaky["val"]) and set(split["train"]) <= set(leaky["train"])
    train = len(leaky["train"]) - len(split["train"])
    reason = f"{train} train images within 25 m of a val or test image"
    assert train and reason in said
    assert f"\n  {reason}\n" in (out / "README.txt").read_text().partition("Left out (")[2]


UNSEQUENCED = "state = 'stored' AND provider IN ('flickr', 'urls') ORDER BY id"


def _crowded(harvest: Harvest, tmp_path: Path) -> Harvest:
    """The harvest with its photos of no sequence (Flickr's, the URL list's) moved to spots
    40 m apart along a street, the first 12 in twos 5 m apart, the others one a spot."""
    mine = _harvest_copy(harvest, tmp_path)
    with sqlite3.connect(mine.database_url.removeprefix("sqlite:///")) as db:
        ids = db.execute(f"SELECT id FROM images WHERE {UNSEQUENCED}").fetchall()
        for n, (row_id,) in enumerate(ids):
            spot, second = (n // 2, n % 2) if n < 12 else (n - 6, 0)
            lat = 45.0 + second * 5 / 111_132
            lon = 9.0 + spot * 40 / (111_319 * math.cos(math.radians(45)))
            db.execute("UPDATE images SET lat = ?, lon = ? WHERE id = ?", (lat, lon, row_id))
    return mine


def _gallery_near(out: Path) -> tuple[int, int]:
    """The queries of an export and how many have a gallery image of their split within
    25 m, as GeoWarp measures it (the names' easting and northing, one zone)."""
    places: dict[tuple[str, str], list[tuple[str, float, float]]] = defaultdict(list)
    for path in out.glob("images/*/*/*.jpg"):
        f = parse_vpr_name(path.name)
        zone = f"{f['zone_number']}{f['zone_letter'] >= 'N'}"
        places[path.parent.parent.name, path.parent.name].append(
            (zone, float(f["east"]), float(f["north"]))
        )
    queries = found = 0
    for split in SPLITS:
        for zone, *point in places[split, "queries"]:
            queries += 1
            found += any(
                z == zone and math.dist(g, point) <= 25 for z, *g in places[split, "gallery"]
            )
    return queries, found


def test_every_query_has_a_gallery_image_of_its_split_within_25_m(
    harvest: Harvest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    mine = _crowded(harvest, tmp_path)
    out = tmp_path / "vpr"
    argv = ("export", *EVERY_CAMPAIGN, "--format", "vpr", "--queries-by", "time",
            "--query-fraction", "0.5")  # fmt: skip
    assert main(mine.argv(*argv, "--out", str(out))) == 0
    said = capsys.readouterr().out
    queries, found = _gallery_near(out)
    assert queries > 6 and found == queries
    unfound = re.search(r"(\d+) queries with no gallery image within 25 m", said)
    assert unfound, "a query at a spot of its own is left out"
    readme = (out / "README.txt").read_text()
    assert f"  {unfound[1]} queries with no gallery image within 25 m\n" in readme


def test_roles_of_images_of_no_sequence_stay_when_more_arrive_in_their_cells(
    harvest: Harvest, tmp_path: Path
):
    mine = _crowded(harvest, tmp_path)
    database = mine.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(database) as db:
        taken = "coalesce(captured_at, captured_local, '9')"
        rows = db.execute(f"SELECT id, {taken} FROM images WHERE {UNSEQUENCED}").fetchall()
        # The photos taken first arrive last: by capture time, they would be the gallery.
        held = [(i,) for i, _ in sorted(rows, key=lambda r: r[1])[: len(rows) // 3]]
        db.executemany("UPDATE images SET state = 'queued' WHERE id = ?", held)
    out = tmp_path / "vpr"
    argv = mine.argv("export", "--campaign", "landmarks", "--campaign", "street", "--format", "vpr",
                     "--out", str(out), "--buffer-m", "0", "--query-fraction", "0.5")  # fmt: skip
    assert main(argv) == 0
    before = files_by_id(out)
    with sqlite3.connect(database) as db:
        db.executemany("UPDATE images SET state = 'stored' WHERE id = ?", held)
    assert main(argv) == 0
    after = files_by_id(out)
    assert {k: after[k] for k in before} == before, "same split, role and name"
    assert len(after) > len(before) and any("/queries/" in f for f in before.values())


@pytest.mark.parametrize("option", ["--buffer-m", "--positive-m"])
def test_a_radius_under_a_millimetre_is_taken_as_written(
    harvest: Harvest, tmp_path: Path, option: str
):
    """Points were bucketed by the radius itself: of 1e-320 m, an easting's bucket index was
    infinite, an OverflowError traceback. It leaves out what a radius of a nanometre does."""
    assert _vpr(harvest, tmp_path / "tiny", option, "1e-320") == 0
    assert _vpr(harvest, tmp_path / "nano", option, "1e-9") == 0
    tiny, nano = tree_of(tmp_path / "tiny"), tree_of(tmp_path / "nano")
    assert tiny.pop("README.txt") != nano.pop("README.txt")  # which states the radius
    assert tiny == nano
