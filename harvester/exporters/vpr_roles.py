"""Which images of a VPR split are its gallery and which its queries.

A Mapillary sequence is a traversal: in each cell the traversal captured first is the
gallery and later ones are its queries, as in datasets of streets driven again. An image of
no sequence (Flickr, a URL list) is a traversal of its own, so that rule would make every
image after a cell's first a query, near its gallery image or not, and move it whenever an
earlier photo arrived: such an image's role is a hash of its id and the seed instead, as a
cell's split is a hash of the cell, and an export after more images arrived moves none."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from fractions import Fraction
from typing import Any

from harvester.exporters.capture import capture_key
from harvester.exporters.selection import Item

GALLERY, QUERIES = "gallery", "queries"
QUERIES_BY = ("auto", "time", "pairs", "random")


def hashed(text: str) -> Fraction:
    """A point of 0..1 fixed by `text` alone: the first 8 bytes of its SHA-256 over 2**64."""
    return Fraction(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big"), 2**64)


def hashed_role(record: Mapping[str, Any], seed: int, fraction: float) -> str:
    """A query when `{seed}:{provider}:{provider_id}` hashes below `fraction`."""
    point = hashed(f"{seed}:{record['provider']}:{record['provider_id']}")
    return QUERIES if point < Fraction(fraction) else GALLERY


def pair_role(item: Item) -> str | None:
    for hit in item.image.hits:
        if hit.role in ("database", "query"):
            return GALLERY if hit.role == "database" else QUERIES
    return None


def roles(
    items: Sequence[Item], how: str, cells: Mapping[int, Hashable], seed: int, fraction: float
) -> dict[int, str]:
    """Each image's role, by `id()`. `pairs` and `auto` take a pairs file's role where an image
    has one; the others are gallery images (`pairs`: distractors) or placed by time (`auto`:
    so a region exported with a pairs campaign still has its queries)."""
    paired = {id(i): r for i in items if how in ("auto", "pairs") and (r := pair_role(i))}
    rest = [i for i in items if id(i) not in paired]
    if how == "pairs":
        return paired | dict.fromkeys(map(id, rest), GALLERY)
    hashes = [i for i in rest if how == "random" or not i.record["sequence_id"]]
    found = {id(i): hashed_role(i.record, seed, fraction) for i in hashes}
    return paired | found | _by_time([i for i in rest if id(i) not in found], cells)


def rule_said(items: Sequence[Item], how: str) -> str:
    """The rule `roles` followed, for README.txt: `auto` as it resolved, and how many images
    each part of it placed."""
    paired = sum(pair_role(i) is not None for i in items)
    others = len(items) - paired
    if how == "pairs" and others:
        return f"pairs (--queries-by pairs; the {others} images in no pairs file: gallery)"
    if how != "auto":
        return f"{how} (--queries-by {how})"
    if not paired:
        return "time (--queries-by auto: no image is in a pairs file)"
    if not others:
        return "pairs (--queries-by auto: every image is in a pairs file)"
    return (
        f"pairs for the {paired} images in a pairs file, time for the {others} others"
        " (--queries-by auto)"
    )


def _by_time(items: Sequence[Item], cells: Mapping[int, Hashable]) -> dict[int, str]:
    """In each cell, the sequence captured first is the gallery, later ones are queries."""
    by_cell: dict[Hashable, list[Item]] = defaultdict(list)
    for item in items:
        by_cell[cells[id(item)]].append(item)
    found: dict[int, str] = {}
    for group in by_cell.values():
        starts: dict[str, str] = {}
        for item in group:
            stamp = capture_key(item.record) or "9999"
            key = str(item.record["sequence_id"])
            starts[key] = min(starts.get(key, stamp), stamp)
        first = min(starts, key=lambda k: (starts[k], k))
        for item in group:
            found[id(item)] = GALLERY if str(item.record["sequence_id"]) == first else QUERIES
    return found
