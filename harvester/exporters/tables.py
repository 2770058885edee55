"""Parquet, CSV and JSON Lines: one row per stored image, the same columns in each."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from harvester.exporters.output import ExportFolder
from harvester.exporters.rows import COLUMNS, SCHEMA, plain, table_row
from harvester.exporters.selection import Item


def parquet_bytes(rows: Sequence[dict[str, Any]]) -> bytes:
    table = pa.Table.from_pylist(list(rows), schema=SCHEMA)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


# The table's text columns: a provider's or a list's free text may land in any of them.
TEXT_COLUMNS = tuple(f.name for f in SCHEMA if pa.types.is_string(f.type))
# What makes a spreadsheet read a cell as a formula (OWASP's CSV injection list).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_bytes(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[str] = COLUMNS,
    text: Collection[str] = TEXT_COLUMNS,
) -> bytes:
    """Every CSV an export writes (tables, attribution, pairs): UTF-8, a header, `\\n` line
    ends; lists and structs as JSON text in their cell; empty cells for missing values. A
    cell of a `text` column starting as a formula would (`=HYPERLINK(...)`, `-2+3`) gets a
    leading `'`, so a spreadsheet opening the file shows it instead of running it; numbers
    (a latitude of -33.8) stay as they are. A cell holding a bare CR is quoted too: the
    writer quotes only for the line end it writes (`\n`), and a reader taking CR for a line
    end would split the row there."""
    guarded = frozenset(text)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        cells = [_cell(row[name], name in guarded) for name in columns]
        if any("\r" in cell for cell in cells):
            buffer.write(_with_cr_quoted(cells))
        else:
            writer.writerow(cells)
    return buffer.getvalue().encode("utf-8")


def _with_cr_quoted(cells: list[str]) -> str:
    """One row written as if CR were part of the line end, so cells holding one are quoted."""
    line = io.StringIO()
    csv.writer(line, lineterminator="\r\n").writerow(cells)
    return line.getvalue().removesuffix("\r\n") + "\n"


def _cell(value: Any, text: bool) -> str:
    value = plain(value)
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    shown = str(value)
    return f"'{shown}" if text and shown.startswith(_FORMULA_START) else shown


def jsonl_bytes(rows: Sequence[dict[str, Any]]) -> bytes:
    lines = (json.dumps(plain(row), ensure_ascii=False) for row in rows)
    return "".join(line + "\n" for line in lines).encode("utf-8")


WRITERS: dict[str, tuple[str, Callable[[Sequence[dict[str, Any]]], bytes]]] = {
    "parquet": ("images.parquet", parquet_bytes),
    "csv": ("images.csv", csv_bytes),
    "jsonl": ("images.jsonl", jsonl_bytes),
}


def export_table(items: Sequence[Item], folder: ExportFolder, kind: str) -> str:
    name, render = WRITERS[kind]
    folder.write(name, render([table_row(item) for item in items]))
    return name
