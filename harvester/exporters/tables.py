"""Parquet, CSV and JSON Lines: one row per stored image, the same columns in each."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
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


def csv_bytes(rows: Iterable[Mapping[str, Any]], columns: Sequence[str] = COLUMNS) -> bytes:
    """Every CSV an export writes (tables, attribution, pairs): UTF-8, a header, `\\n` line
    ends; lists and structs as JSON text in their cell; empty cells for missing values."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row[name]) for name in columns])
    return buffer.getvalue().encode("utf-8")


def _cell(value: Any) -> str:
    value = plain(value)
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


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
