"""`harvester export --format parquet|csv|jsonl` on a real harvest."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pyarrow.parquet as pq
import pytest
from export_harvest import FORMULAS, Harvest, rows_of, tree_of

from harvester.cli import main
from harvester.emulator.config import FLICKR_KEY, MAPILLARY_TOKEN
from harvester.records import SubmitReport

ALL = ("--campaign", "svpr", "--campaign", "street", "--campaign", "landmarks")


def _stored(harvest: Harvest) -> dict[str, sqlite3.Row]:
    with sqlite3.connect(harvest.database_url.removeprefix("sqlite:///")) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT * FROM images WHERE state = 'stored'").fetchall()
        unstored = db.execute(
            "SELECT count(*) FROM images WHERE state != 'stored' AND path IS NOT NULL"
        ).fetchone()[0]
    assert unstored == 0, "a row never stored has a path"
    return {f"{r['provider']}:{r['provider_id']}": r for r in rows}


def test_parquet_has_one_row_per_stored_image_with_its_record_and_finders(
    harvest: Harvest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    out = tmp_path / "out"
    assert main(harvest.argv("export", *ALL, "--format", "parquet", "--out", str(out))) == 0
    assert "exported" in capsys.readouterr().out
    stored = _stored(harvest)
    table = pq.read_table(out / "images.parquet")
    frame = pd.read_parquet(out / "images.parquet")
    assert table.num_rows == len(frame) == len(stored) and len(stored) > 20
    assert {"flickr", "mapillary", "urls"} == set(frame["provider"])
    for row in table.to_pylist():
        record = stored[f"{row['provider']}:{row['provider_id']}"]
        assert row["path"] == record["path"]
        data = (harvest.root / row["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"] == record["sha256"]
        assert row["bytes"] == len(data) and row["width"] == record["width"]
        assert row["frame_top"] is not None and row["license_id"] == record["license_id"]
        assert row["attribution"] and row["campaigns"] and row["queries"]
        assert row["lat"] == record["lat"]
        assert (row["captured_at"] is None) == (record["captured_at"] is None)
    mapillary = frame[frame["provider"] == "mapillary"]
    assert set(mapillary["license_name"]) == {"CC BY-SA 4.0"}
    assert all(line.split('"')[2].startswith(" by @") for line in mapillary["attribution"])
    roles = {h["role"] for hits in mapillary["hits"] for h in hits}
    assert roles == {"database", "query"}
    flickr = frame[frame["provider"] == "flickr"]
    assert set(q for qs in flickr["queries"] for q in qs) == {"castle", "lighthouse"}
    assert flickr["license_url"].notna().any()


def test_the_same_database_gives_byte_identical_files(harvest: Harvest, tmp_path: Path):
    for kind, name in (
        ("parquet", "images.parquet"),
        ("csv", "images.csv"),
        ("jsonl", "images.jsonl"),
    ):
        first, second = tmp_path / f"{kind}-1", tmp_path / f"{kind}-2"
        for out in (first, second):
            assert main(harvest.argv("export", *ALL, "--format", kind, "--out", str(out))) == 0
        assert (first / name).read_bytes() == (second / name).read_bytes()


def test_csv_and_jsonl_carry_the_same_rows(harvest: Harvest, tmp_path: Path):
    for kind in ("csv", "jsonl"):
        argv = ("export", "--campaign", "street", "--format", kind, "--out", str(tmp_path / kind))
        assert main(harvest.argv(*argv)) == 0
    table = rows_of(tmp_path / "csv" / "images.csv")
    lines = [json.loads(x) for x in (tmp_path / "jsonl" / "images.jsonl").read_text().splitlines()]
    assert [r["provider_id"] for r in table] == [r["provider_id"] for r in lines]
    assert len(table) == len([r for r in _stored(harvest).values() if r["provider"] == "urls"])
    assert json.loads(table[0]["campaigns"]) == lines[0]["campaigns"] == ["street"]
    assert table[0]["captured_at"] == lines[0]["captured_at"]
    assert lines[0]["captured_at"].endswith("Z")


def test_no_credential_reaches_an_export(harvest: Harvest, tmp_path: Path):
    main(harvest.argv("export", *ALL, "--format", "jsonl", "--out", str(tmp_path / "jsonl")))
    text = (tmp_path / "jsonl" / "images.jsonl").read_text()
    secrets = (FLICKR_KEY, MAPILLARY_TOKEN, quote(MAPILLARY_TOKEN, safe=""), "access_token", "oh=")
    for secret in secrets:
        assert secret not in text


def test_a_re_export_rewrites_only_what_changed(harvest: Harvest, tmp_path: Path, capsys):
    out = tmp_path / "out"
    argv = harvest.argv("export", *ALL, "--format", "csv", "--out", str(out))
    assert main(argv) == 0
    capsys.readouterr()
    assert main(argv) == 0
    assert "0 files added, 0 changed, 1 unchanged, 0 removed" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--campaign", "nope"), "no campaign named 'nope'"),
        (("--campaign", "street", "--bbox", "0,0,0.001,0.001"), "leave none of the"),
    ],
)
def test_nothing_to_export_is_one_clear_line_and_exit_2(
    harvest: Harvest, tmp_path: Path, capsys, extra: tuple[str, ...], message: str
):
    argv = harvest.argv("export", *extra, "--format", "csv", "--out", str(tmp_path / "o"))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_a_folder_of_something_else_is_refused_unless_overwrite(
    harvest: Harvest, tmp_path: Path, capsys
):
    out = tmp_path / "theirs"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    argv = harvest.argv("export", "--campaign", "street", "--format", "csv", "--out", str(out))
    assert main(argv) == 2
    assert "not empty and not a harvester export" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0
    assert (out / "notes.txt").read_text() == "mine" and (out / "images.csv").is_file()


def test_every_stored_image_has_a_perceptual_hash_and_near_duplicates_can_be_dropped(
    harvest: Harvest, tmp_path: Path
):
    assert all(r["phash"] and len(r["phash"]) == 16 for r in _stored(harvest).values())
    argv = ("export", "--campaign", "street", "--format", "csv")
    assert main(harvest.argv(*argv, "--out", str(tmp_path / "all"))) == 0
    assert (
        main(harvest.argv(*argv, "--out", str(tmp_path / "one"), "--drop-near-duplicates", "64"))
        == 0
    )
    every = rows_of(tmp_path / "all" / "images.csv")
    kept = rows_of(tmp_path / "one" / "images.csv")
    assert len(every) == 12 and len(kept) == 1, "within 64 bits every hash is near every other"
    largest = max(int(r["width"]) * int(r["height"]) for r in every)
    assert int(kept[0]["width"]) * int(kept[0]["height"]) == largest


def test_csv_text_a_spreadsheet_would_run_is_quoted_and_numbers_and_other_formats_kept(
    as_written: tuple[Harvest, SubmitReport], tmp_path: Path
):
    harvest, _ = as_written
    for kind in ("csv", "attribution", "jsonl", "parquet"):
        argv = ("export", "--campaign", "list", "--format", kind, "--out", str(tmp_path / kind))
        assert main(harvest.argv(*argv)) == 0
    table = {r["provider_id"]: r for r in rows_of(tmp_path / "csv" / "images.csv")}
    credits = {r["provider_id"]: r for r in rows_of(tmp_path / "attribution" / "attribution.csv")}
    lines = (json.loads(x) for x in (tmp_path / "jsonl" / "images.jsonl").read_text().splitlines())
    raw = {r["provider_id"]: r for r in lines}
    formulas = {k: r for k, r in raw.items() if r["title"] in FORMULAS}
    assert len(formulas) == len(FORMULAS)
    for key, row in formulas.items():
        title = row["title"]
        assert table[key]["title"] == credits[key]["title"] == f"'{title}"
        assert table[key]["owner"] == table[key]["owner_name"] == f"'={title}"
        assert credits[key]["author"] == f"'={title}"
        assert (table[key]["lat"], table[key]["lon"]) == ("-33.8", "-70.6")
        assert (row["lat"], row["lon"]) == (-33.8, -70.6) and row["owner"] == f"={title}"
    parquet = {
        r["provider_id"]: r
        for r in pq.read_table(tmp_path / "parquet" / "images.parquet").to_pylist()
    }
    assert {k: parquet[k]["title"] for k in formulas} == {
        k: r["title"] for k, r in formulas.items()
    }


def test_another_format_into_an_exports_folder_is_refused_unless_overwrite(
    harvest: Harvest, tmp_path: Path, capsys
):
    out = tmp_path / "vpr"
    vpr = ("export", "--campaign", "svpr", "--format", "vpr", "--out", str(out))
    assert main(harvest.argv(*vpr)) == 0
    before = tree_of(out)
    assert len(before) > 10
    capsys.readouterr()
    csv_argv = harvest.argv("export", "--campaign", "svpr", "--format", "csv", "--out", str(out))
    assert main(csv_argv) == 2
    err = capsys.readouterr().err.strip()
    assert "holds a vpr export" in err and "--overwrite" in err and len(err.splitlines()) == 1
    assert tree_of(out) == before, "a refused export changes nothing"
    assert main([*csv_argv, "--overwrite"]) == 0
    assert sorted(tree_of(out)) == [".harvester-export.json", "images.csv"]
    assert main(csv_argv) == 0, "the folder is now a csv export"
