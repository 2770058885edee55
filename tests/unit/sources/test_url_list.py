"""URL lists: every readable line goes in, every other one is named by its number."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harvester.db.models import Image
from harvester.errors import InputError
from harvester.sources.urls import MAX_LICENSE, BadLine, parse_row, read_rows


def test_csv_rows_with_a_huge_field_and_nul_bytes_are_reported_not_fatal(tmp_path: Path):
    listing = tmp_path / "list.csv"
    huge = "x" * 200_000
    listing.write_text(
        f"url,id,title\nhttp://a/1.jpg,1,ok\nhttp://a/2.jpg,2,{huge}\nhttp://a/3\0.jpg,3,nul\n"
    )
    rows = list(read_rows(listing))
    assert [n for n, r in rows if isinstance(r, BadLine)] == [3]
    good = [r for _, r in rows if not isinstance(r, BadLine)]
    assert [r["id"] for r in good] == ["1", "3"]
    with pytest.raises(ValueError, match="url contains a NUL byte"):  # reported, not stripped
        parse_row(good[1], "c")


def test_tsv_and_parquet_read_like_csv(tmp_path: Path):
    tsv = tmp_path / "list.tsv"
    tsv.write_text("url\tid\tlat\tlon\textra\nhttp://a/1.jpg\t1\t45.5\t7.25\tkept\n")
    parquet = tmp_path / "list.parquet"
    pq.write_table(pa.table({"url": ["http://a/1.jpg"], "id": ["1"], "lat": [45.5],
                             "lon": [7.25], "extra": ["kept"]}), parquet)  # fmt: skip
    for path in (tsv, parquet):
        ((_, row),) = list(read_rows(path))
        assert not isinstance(row, BadLine)
        found = parse_row(row, "My Campaign")
        assert found.record["lat"] == 45.5 and found.record["lon"] == 7.25
        assert found.record["raw"] == {"extra": "kept"}
        assert found.group == found.provider_id.split(":")[0]


@pytest.mark.parametrize(
    "row,reason",
    [
        ({"url": "ftp://a/b.jpg"}, "not an http"),
        ({"url": "http://a/b.jpg", "lat": "north"}, "lat is not a number"),
        ({"url": "http://a/b.jpg", "lat": "95", "lon": "1"}, "outside"),
        ({"url": "http://a/b.jpg", "lat": "45"}, "together"),
        ({"url": "http://a/b.jpg", "captured_at": "yesterday"}, "not a date"),
        ({"url": "http://a/b.jpg", "id": "x" * 101}, "longer than"),
        ({"url": "http://a/b.jpg", "license": "x" * 41}, "license longer than 40 characters"),
    ],
)
def test_bad_rows_say_why(row: dict[str, str], reason: str):
    with pytest.raises(ValueError, match=reason):
        parse_row(row, "c")


def test_a_list_without_a_url_column_is_refused(tmp_path: Path):
    listing = tmp_path / "list.csv"
    listing.write_text("link\nhttp://a/1.jpg\n")
    with pytest.raises(InputError, match="url"):
        list(read_rows(listing))


def test_a_licence_is_stored_by_its_canonical_id_in_a_column_that_holds_it():
    for written in ("CC BY-NC 4.0", "https://creativecommons.org/licenses/by-nc/4.0/deed.en"):
        row = {"url": "http://a/b.jpg", "license": written}
        assert parse_row(row, "c").record["license_id"] == "CC-BY-NC-4.0"
    row = {"url": "http://a/b.jpg", "license": "x" * MAX_LICENSE}
    assert parse_row(row, "c").record["license_id"] == "x" * MAX_LICENSE  # unknown: as given
    assert Image.__table__.c.license_id.type.length == MAX_LICENSE
