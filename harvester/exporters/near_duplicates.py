"""Near-duplicates: images whose perceptual hashes are within a Hamming distance, grouped
(transitively) within each campaign. Bursts and re-uploads: same scene, other bytes.

Pigeonhole: two 64-bit hashes within distance d agree on at least one of d + 1 disjoint
blocks of bits, so only images sharing a block value are compared."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Mapping, Sequence

from harvester.exporters.selection import Item

# Re-encoded, resized and 2%-cropped copies of scikit-image's photos measured within 10
# (97% of them); distinct photos never came closer than 20 (tests/unit/imaging/test_phash.py).
NEAR = 10


def _blocks(d: int) -> list[tuple[int, int]]:
    """(shift, mask) of d + 1 disjoint blocks covering 64 bits."""
    count = min(d + 1, 64)
    edges = [round(i * 64 / count) for i in range(count + 1)]
    return [(lo, (1 << (hi - lo)) - 1) for lo, hi in itertools.pairwise(edges)]


def near_groups(hashes: Mapping[int, int], distance: int = NEAR) -> list[list[int]]:
    """Groups of two or more ids whose hashes chain within `distance`, each sorted."""
    keys = sorted(hashes)
    parent = {k: k for k in keys}

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for shift, mask in _blocks(distance):
        buckets: dict[int, list[int]] = defaultdict(list)
        for k in keys:
            buckets[(hashes[k] >> shift) & mask].append(k)
        for bucket in buckets.values():
            for i, a in enumerate(bucket):
                for b in bucket[i + 1 :]:
                    if (hashes[a] ^ hashes[b]).bit_count() <= distance:
                        ra, rb = root(a), root(b)
                        if ra != rb:
                            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = defaultdict(list)
    for k in keys:
        groups[root(k)].append(k)
    return sorted(g for g in groups.values() if len(g) > 1)


def groups_by_campaign(
    rows: Sequence[tuple[str, int, str | None]], distance: int = NEAR
) -> dict[str, list[list[int]]]:
    """(campaign, image id, hex hash) rows -> each campaign's groups of image ids."""
    per: dict[str, dict[int, int]] = defaultdict(dict)
    for campaign, image_id, value in rows:
        if value:
            per[campaign][image_id] = int(value, 16)
    found = {c: near_groups(h, distance) for c, h in sorted(per.items())}
    return {c: groups for c, groups in found.items() if groups}


def drop_near_duplicates(items: Sequence[Item], distance: int) -> list[Item]:
    """One image per near-duplicate group of each campaign: the one with most pixels."""
    groups = groups_by_campaign(
        [(i.image.campaign, i.record["id"], i.record["phash"]) for i in items], distance
    )
    by_id = {i.record["id"]: i for i in items}
    dropped: set[int] = set()
    for campaign_groups in groups.values():
        for group in campaign_groups:
            keep = max(group, key=lambda k: (_pixels(by_id[k]), -k))
            dropped.update(k for k in group if k != keep)
    return [i for i in items if i.record["id"] not in dropped]


def _pixels(item: Item) -> int:
    return int(item.record["width"] or 0) * int(item.record["height"] or 0)
