"""Readers for the Spherical-VPR id lists: sequence files and database/query pair files.

Both come with or without their header line (and, written by pandas, sometimes with an
extra index column, which a header lets us ignore). A malformed line is reported by its
number and skipped; the rest of the file still counts.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harvester.sources.fields import coordinate
from harvester.sources.textfile import csv_records

SEQUENCE_COLUMNS = ("sequence_id", "image_id", "latitude", "longitude")
PAIRS_COLUMNS = (
    "sequence_id_database",
    "sequence_id_query",
    "image_id_database",
    "image_id_query",
    "latitude_database",
    "longitude_database",
    "latitude_query",
    "longitude_query",
)
ROLES = ("database", "query")


@dataclass(frozen=True)
class IdItem:
    """One image named by a list, with what the list says about it."""

    image_id: str
    sequence_id: str | None = None
    lat: float | None = None
    lon: float | None = None
    role: str | None = None  # "database" / "query" in a pairs file
    pair: int | None = None  # line number of the pair
    other: str | None = None  # the other image of the pair


@dataclass
class CsvRead:
    items: list[IdItem] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    lines: int = 0  # data lines seen (not blank, not the header)


class _Malformed(ValueError):
    """A line that cannot be used; the message says why."""


def read_sequence_csv(path: Path) -> CsvRead:
    """`sequence_id,image_id,latitude,longitude` lines; duplicate ids are kept once."""
    read = CsvRead()
    seen: set[str] = set()
    for line_no, row in _rows(path, SEQUENCE_COLUMNS, read):
        try:
            item = IdItem(
                image_id=_image_id(row["image_id"]),
                sequence_id=_sequence_id(row["sequence_id"]),
                lat=coordinate(row["latitude"], 90, "latitude"),
                lon=coordinate(row["longitude"], 180, "longitude"),
            )
        except ValueError as exc:  # _Malformed and malformed coordinates alike
            read.problems.append(f"{path.name} line {line_no}: {exc}")
            continue
        if item.image_id not in seen:
            seen.add(item.image_id)
            read.items.append(item)
    return read


def read_pairs_csv(path: Path) -> CsvRead:
    """Pair lines, as two items each (database, then query) that name each other."""
    read = CsvRead()
    for line_no, row in _rows(path, PAIRS_COLUMNS, read):
        try:
            sides = [
                (
                    _image_id(row[f"image_id_{role}"]),
                    _sequence_id(row[f"sequence_id_{role}"]),
                    coordinate(row[f"latitude_{role}"], 90, f"latitude_{role}"),
                    coordinate(row[f"longitude_{role}"], 180, f"longitude_{role}"),
                )
                for role in ROLES
            ]
        except ValueError as exc:  # _Malformed and malformed coordinates alike
            read.problems.append(f"{path.name} line {line_no}: {exc}")
            continue
        for (image_id, seq, lat, lon), role, (other, *_rest) in zip(
            sides, ROLES, reversed(sides), strict=True
        ):
            read.items.append(IdItem(image_id, seq, lat, lon, role, line_no, other))
    return read


def _rows(
    path: Path, columns: Sequence[str], read: CsvRead
) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row by column name) for every data line; bad shapes become problems."""
    index: dict[str, int] | None = None
    width = len(columns)
    for line_no, raw in csv_records(path):
        if isinstance(raw, csv.Error):  # a field over csv's 128 KB limit, say
            read.lines += 1
            read.problems.append(f"{path.name} line {line_no}: {raw}")
            continue
        cells = [c.strip() for c in raw]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if index is None and _is_header(cells, columns):
            index = {name.lower(): k for k, name in enumerate(cells)}
            width = len(cells)
            continue
        read.lines += 1
        if len(cells) != width:
            read.problems.append(
                f"{path.name} line {line_no}: expected {width} columns, got {len(cells)}"
            )
            continue
        positions = index or {name: k for k, name in enumerate(columns)}
        yield line_no, {name: cells[positions[name]] for name in columns}


def _is_header(cells: Sequence[str], columns: Sequence[str]) -> bool:
    names = {c.lower() for c in cells}
    return all(name in names for name in columns)


def _image_id(text: str) -> str:
    if not text.isdigit():
        raise _Malformed(f"image id must be a number, got {text[:40]!r}")
    return text


def _sequence_id(text: str) -> str | None:
    if len(text) > 200 or any(c.isspace() for c in text):
        raise _Malformed(f"unusable sequence id {text[:40]!r}")
    return text or None
