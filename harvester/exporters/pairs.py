"""The Spherical-VPR pairs CSV, rebuilt from what was harvested: a pair is written when
both of its images were stored (and exported), in the order of the submitted file."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from harvester.exporters.selection import Item
from harvester.exporters.tables import csv_bytes
from harvester.sources.mapillary_csv import PAIRS_COLUMNS

_PART = " part "


def _pair_sides(item: Item) -> list[tuple[tuple[str, str, int], str]]:
    """((campaign, pairs file, line), role) for every pair this image is in."""
    sides = []
    for hit in item.image.hits:
        detail = hit.detail or {}
        entries = detail.get("pairs") or [{"pair": detail.get("pair"), "role": hit.role}]
        source = hit.query.rsplit(_PART, 1)[0]
        for entry in entries:
            line, role = entry.get("pair"), entry.get("role", hit.role)
            if isinstance(line, int) and role in ("database", "query"):
                sides.append(((hit.campaign, source, line), str(role)))
    return sides


def pair_rows(items: Sequence[Item]) -> list[dict[str, Any]]:
    pairs: dict[tuple[str, str, int], dict[str, Item]] = defaultdict(dict)
    for item in items:
        for key, role in _pair_sides(item):
            pairs[key].setdefault(role, item)
    rows = []
    for key in sorted(pairs):
        sides = pairs[key]
        if "database" not in sides or "query" not in sides:
            continue
        row: dict[str, Any] = {}
        for role in ("database", "query"):
            record = sides[role].record
            row[f"sequence_id_{role}"] = record["sequence_id"] or ""
            row[f"image_id_{role}"] = record["provider_id"]
            row[f"latitude_{role}"] = _coordinate(record["lat"])
            row[f"longitude_{role}"] = _coordinate(record["lon"])
        rows.append(row)
    return rows


def _coordinate(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def pairs_csv(rows: Sequence[dict[str, Any]]) -> bytes:
    """The submitted file's header and column order, so it can be submitted again: its
    cells, Mapillary's ids and coordinates, are written as they are."""
    return csv_bytes(rows, PAIRS_COLUMNS, text=())
