"""Flickr's capture time (a wall clock with no zone) reaches every export, honestly labelled:
`captured_local` beside a UTC `captured_at` that stays empty, the time filters and VPR names."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq
from export_harvest import Harvest, rows_of

from harvester.cli import main
from harvester.exporters.vpr import parse_vpr_name

FLICKR = ("export", "--campaign", "landmarks")


def _taken(harvest: Harvest) -> dict[str, str | None]:
    """Flickr's own datetaken of every stored photo, as naive ISO 8601 (None if unknown)."""
    with sqlite3.connect(harvest.database_url.removeprefix("sqlite:///")) as db:
        rows = db.execute(
            "SELECT provider_id, raw FROM images WHERE provider = 'flickr' AND state = 'stored'"
        ).fetchall()
    taken = {}
    for provider_id, text in rows:
        raw = json.loads(text)
        unknown = str(raw["datetakenunknown"]) == "1"
        taken[provider_id] = None if unknown else raw["datetaken"].replace(" ", "T")
    return taken


def test_flickr_images_carry_their_local_capture_time_in_every_table_format(
    harvest: Harvest, tmp_path: Path
):
    taken = _taken(harvest)
    assert sum(t is not None for t in taken.values()) >= 5
    for kind in ("parquet", "csv", "jsonl"):
        assert main(harvest.argv(*FLICKR, "--format", kind, "--out", str(tmp_path / kind))) == 0
    parquet = pq.read_table(tmp_path / "parquet" / "images.parquet").to_pylist()
    csv_rows = rows_of(tmp_path / "csv" / "images.csv")
    jsonl = [json.loads(x) for x in (tmp_path / "jsonl" / "images.jsonl").read_text().splitlines()]
    for rows, empty in ((parquet, None), (csv_rows, ""), (jsonl, None)):
        assert {r["provider_id"]: r["captured_local"] or None for r in rows} == taken
        assert all(r["captured_at"] == empty for r in rows), "no UTC instant is claimed"


def test_since_and_until_pick_flickr_images_by_their_local_time(harvest: Harvest, tmp_path):
    known = sorted(t for t in _taken(harvest).values() if t)
    middle = known[len(known) // 2]
    since, until = middle[:16], middle[:10]  # from that minute on; up to the end of its day
    out = str(tmp_path / "a")
    assert main(harvest.argv(*FLICKR, "--format", "csv", "--since", since, "--out", out)) == 0
    later = [r["captured_local"] for r in rows_of(tmp_path / "a" / "images.csv")]
    assert sorted(later) == [t for t in known if t >= since]
    out = str(tmp_path / "b")
    assert main(harvest.argv(*FLICKR, "--format", "csv", "--until", until, "--out", out)) == 0
    earlier = [r["captured_local"] for r in rows_of(tmp_path / "b" / "images.csv")]
    assert sorted(earlier) == [t for t in known if t[:10] <= until]


def test_vpr_names_of_flickr_images_carry_the_camera_wall_clock(harvest: Harvest, tmp_path):
    taken = _taken(harvest)
    out = tmp_path / "vpr"
    assert main(harvest.argv(*FLICKR, "--format", "vpr", "--out", str(out))) == 0
    names = [parse_vpr_name(p.name) for p in out.glob("images/*/*/*.jpg")]
    assert len(names) >= 5
    for fields in names:
        local = taken[fields["pano_id"]]
        expected = datetime.fromisoformat(local).strftime("%Y%m%d_%H%M%S") if local else ""
        assert fields["timestamp"] == expected
    assert any(fields["timestamp"] for fields in names)
    assert "wall clock" in (out / "README.txt").read_text()
