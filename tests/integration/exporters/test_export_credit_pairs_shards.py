"""Attribution, the Spherical-VPR pairs file and WebDataset shards from a real harvest."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

from export_harvest import Harvest, rows_of

from harvester.cli import main
from harvester.sources.mapillary_csv import read_pairs_csv

ALL = ("--campaign", "svpr", "--campaign", "street", "--campaign", "landmarks")


def _export(harvest: Harvest, out: Path, kind: str, *campaigns: str) -> None:
    argv = harvest.argv("export", *(campaigns or ALL), "--format", kind, "--out", str(out))
    assert main(argv) == 0


def test_attribution_credits_every_image_and_sums_up_by_licence(harvest: Harvest, tmp_path):
    _export(harvest, tmp_path, "attribution")
    _export(harvest, tmp_path / "table", "csv")
    rows = rows_of(tmp_path / "attribution.csv")
    table = rows_of(tmp_path / "table" / "images.csv")
    assert sorted(r["file"] for r in rows) == sorted(r["path"] for r in table)
    mapillary = [r for r in rows if r["provider"] == "mapillary"]
    assert len(mapillary) == 12
    for row in mapillary:
        assert row["license_name"] == "CC BY-SA 4.0"
        assert row["license_url"] == "https://creativecommons.org/licenses/by-sa/4.0/"
        # An `@` cell is a formula to a spreadsheet: the CSV cell reads '@name.
        author = row["author"].removeprefix("'")
        assert row["author"] == f"'{author}" and f"by {author}" in row["attribution"]
        assert author.startswith("@")
        assert row["page_url"].startswith("https://www.mapillary.com/")
    flickr = [r for r in rows if r["provider"] == "flickr"]
    assert all(r["page_url"].startswith("https://www.flickr.com/photos/") for r in flickr)
    md = (tmp_path / "ATTRIBUTION.md").read_text()
    by_sa = [r for r in rows if r["license_name"] == "CC BY-SA 4.0"]
    assert len(by_sa) == 12 + 3, "Mapillary's and the URL list's CC-BY-SA-4.0 are one licence"
    assert "| [CC BY-SA 4.0](https://creativecommons.org/licenses/by-sa/4.0/) | 15 |" in md
    assert md.count("\n- `") == len(rows)


def test_pairs_file_reproduces_the_submitted_pairs_that_were_harvested(
    harvest: Harvest, tmp_path: Path
):
    _export(harvest, tmp_path, "pairs", "--campaign", "svpr")
    text = (tmp_path / "pairs.csv").read_text()
    assert text.splitlines()[0] == (
        "sequence_id_database,sequence_id_query,image_id_database,image_id_query,"
        "latitude_database,longitude_database,latitude_query,longitude_query"
    )
    rows = rows_of(tmp_path / "pairs.csv")
    submitted = [(d.sequence, q.sequence, d.id, q.id) for d, q in harvest.pairs]
    rebuilt = [
        (
            r["sequence_id_database"],
            r["sequence_id_query"],
            r["image_id_database"],
            r["image_id_query"],
        )
        for r in rows
    ]
    assert rebuilt == submitted
    _export(harvest, tmp_path / "table", "csv", "--campaign", "svpr")
    harvested = {r["provider_id"]: r for r in rows_of(tmp_path / "table" / "images.csv")}
    for row, (d, q) in zip(rows, harvest.pairs, strict=True):
        for role, image in (("database", d), ("query", q)):
            lat, lon = float(row[f"latitude_{role}"]), float(row[f"longitude_{role}"])
            assert (lat, lon) == (
                float(harvested[image.id]["lat"]),
                float(harvested[image.id]["lon"]),
            )
            assert abs(lat - image.lat) < 1e-4 and abs(lon - image.lon) < 1e-4
    again = read_pairs_csv(tmp_path / "pairs.csv")  # it can be submitted again as it is
    assert not again.problems and len(again.items) == 2 * len(harvest.pairs)


def test_a_pairs_export_counts_the_images_in_its_pairs_not_those_selected(
    harvest: Harvest, tmp_path: Path, capsys
):
    argv = harvest.argv(
        "export", "--campaign", "svpr", "--campaign", "street", "--format", "pairs",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert main(argv) == 0
    said = capsys.readouterr().out
    paired = 2 * len(harvest.pairs)
    assert f"exported {paired} of the " in said and f"({len(harvest.pairs)} pairs)" in said, said


def test_pairs_with_a_side_left_out_are_not_written(harvest: Harvest, tmp_path: Path):
    d, _ = harvest.pairs[0]
    bbox = f"{d.lon - 1e-7},{d.lat - 1e-7},{d.lon + 1e-7},{d.lat + 1e-7}"
    argv = harvest.argv(
        "export", "--campaign", "svpr", "--format", "pairs", "--out", str(tmp_path), "--bbox", bbox
    )
    assert main(argv) == 2  # the query side is elsewhere: no whole pair is left


def test_a_pairs_export_without_pairs_is_refused_and_makes_no_folder(
    harvest: Harvest, tmp_path: Path, capsys
):
    out = tmp_path / "pairs"
    argv = harvest.argv("export", "--campaign", "street", "--format", "pairs", "--out", str(out))
    assert main(argv) == 2
    assert "no pair of the exported images" in capsys.readouterr().err
    assert not out.exists(), "a refused export changes nothing"


def test_webdataset_shards_hold_each_image_and_its_record(harvest: Harvest, tmp_path: Path):
    _export(harvest, tmp_path / "a", "webdataset")
    _export(harvest, tmp_path / "b", "webdataset")
    assert (tmp_path / "a" / "00000.tar").read_bytes() == (
        tmp_path / "b" / "00000.tar"
    ).read_bytes()
    with tarfile.open(tmp_path / "a" / "00000.tar") as tar:
        names = tar.getnames()
        keys = sorted({n.rsplit(".", 1)[0] for n in names})
        assert names == [f"{k}.{ext}" for k in keys for ext in ("jpg", "json")]
        for key in keys:
            meta = json.loads(tar.extractfile(f"{key}.json").read())  # type: ignore[union-attr]
            data = tar.extractfile(f"{key}.jpg").read()  # type: ignore[union-attr]
            assert meta["key"] == key and hashlib.sha256(data).hexdigest() == meta["sha256"]
            assert data == (harvest.root / meta["path"]).read_bytes()
    credits = rows_of(tmp_path / "a" / "attribution.csv")
    assert sorted(r["file"] for r in credits) == [f"00000.tar:{k}.jpg" for k in keys]
