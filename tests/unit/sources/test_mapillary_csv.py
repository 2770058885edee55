"""The Spherical-VPR id lists: both formats, with or without header, bad lines by number."""

from __future__ import annotations

from pathlib import Path

import pytest

from harvester.errors import InputError
from harvester.sources.mapillary_csv import IdItem, read_pairs_csv, read_sequence_csv

SEQ_HEADER = "sequence_id,image_id,latitude,longitude\n"
PAIRS_HEADER = (
    "sequence_id_database,sequence_id_query,image_id_database,image_id_query,"
    "latitude_database,longitude_database,latitude_query,longitude_query\n"
)


def _write(tmp_path: Path, text: str, name: str = "list.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("header", [SEQ_HEADER, ""])
def test_sequence_file_reads_with_or_without_header(tmp_path: Path, header: str) -> None:
    body = "seqA,101,48.85,2.35\nseqA,102,48.86,2.36\n"
    read = read_sequence_csv(_write(tmp_path, header + body))
    assert read.items == [IdItem("101", "seqA", 48.85, 2.35), IdItem("102", "seqA", 48.86, 2.36)]
    assert read.problems == [] and read.lines == 2


def test_a_malformed_sequence_line_is_reported_by_number_and_the_rest_goes_in(
    tmp_path: Path,
) -> None:
    text = (
        SEQ_HEADER  # line 1
        + "seqA,101,48.85,2.35\n"  # 2
        + "seqA,notanid,48.85,2.35\n"  # 3
        + "seqA,103,48.85\n"  # 4
        + "\n"  # 5: blank, ignored
        + "seqA,105,north,2.35\n"  # 6
        + "seqA,106,95,2.35\n"  # 7
        + "seqA,107,,\n"  # 8: coordinates are optional
    )
    read = read_sequence_csv(_write(tmp_path, text))
    assert [i.image_id for i in read.items] == ["101", "107"]
    assert [p.split(":")[0] for p in read.problems] == [
        "list.csv line 3",
        "list.csv line 4",
        "list.csv line 6",
        "list.csv line 7",
    ]
    assert "expected 4 columns, got 3" in read.problems[1]


def test_a_pandas_index_column_and_a_bom_are_tolerated_given_a_header(tmp_path: Path) -> None:
    text = "\ufeff,sequence_id,image_id,latitude,longitude\n0,seqA,101,48.85,2.35\n"
    read = read_sequence_csv(_write(tmp_path, text))
    assert read.items == [IdItem("101", "seqA", 48.85, 2.35)]


def test_a_repeated_image_id_is_kept_once(tmp_path: Path) -> None:
    read = read_sequence_csv(_write(tmp_path, "s,101,1,1\ns,101,1,1\ns,102,1,1\n"))
    assert [i.image_id for i in read.items] == ["101", "102"]


@pytest.mark.parametrize("header", [PAIRS_HEADER, ""])
def test_pairs_file_keeps_roles_line_numbers_and_partners(tmp_path: Path, header: str) -> None:
    body = "dbSeq,qSeq,201,301,36.1,140.1,36.2,140.2\ndbSeq,qSeq,202,302,36.3,140.3,36.4,140.4\n"
    read = read_pairs_csv(_write(tmp_path, header + body))
    first_line = 2 if header else 1
    assert read.items[:2] == [
        IdItem("201", "dbSeq", 36.1, 140.1, "database", first_line, "301"),
        IdItem("301", "qSeq", 36.2, 140.2, "query", first_line, "201"),
    ]
    assert [(i.image_id, i.role, i.pair) for i in read.items[2:]] == [
        ("202", "database", first_line + 1),
        ("302", "query", first_line + 1),
    ]


def test_a_malformed_pair_line_is_reported_and_neither_side_goes_in(tmp_path: Path) -> None:
    text = PAIRS_HEADER + "d,q,201,301,1,1,1,1\nd,q,202,x302,1,1,1,1\nd,q,203,303,1,1,1,1\n"
    read = read_pairs_csv(_write(tmp_path, text, "pairs.csv"))
    assert [i.image_id for i in read.items] == ["201", "301", "203", "303"]
    assert len(read.problems) == 1 and read.problems[0].startswith("pairs.csv line 3:")


def test_an_unreadable_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        read_sequence_csv(tmp_path / "missing.csv")
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"s\xe9q,101,1,1\n")
    with pytest.raises(InputError, match="not UTF-8"):
        read_sequence_csv(latin)
