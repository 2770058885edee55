"""Near-duplicates: images whose perceptual hashes are within a Hamming distance, grouped
(transitively) within each campaign. Bursts and re-uploads: same scene, other bytes.

Pigeonhole: two 64-bit hashes within distance d agree on at least one of d + 1 disjoint
blocks of bits, so only images sharing a block value are compared, in numpy: 0.13 s for
5,000 distinct hashes at d = 10, 0.37 s for 10,000 (loaded 2-core machine); the work is
still quadratic in a bucket's size, so `status` looks at a bounded number of images.

numpy is loaded when there are hashes to compare: the command line imports this module for
NEAR, the default of its flags, and most commands never compare a hash."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # `harvester.cli` imports NEAR for a default: not numpy, nor the database
    import numpy as np
    import numpy.typing as npt

    from harvester.exporters.selection import Item

# Re-encoded, resized and 2%-cropped copies of scikit-image's photos measured within 10
# (97% of them); distinct photos never came closer than 20 (tests/unit/imaging/test_phash.py).
NEAR = 10
CHUNK = 256  # rows of a bucket compared at once against all of it


def _blocks(d: int) -> list[tuple[int, int]]:
    """(shift, mask) of d + 1 disjoint blocks covering 64 bits."""
    count = min(d + 1, 64)
    edges = [round(i * 64 / count) for i in range(count + 1)]
    return [(lo, (1 << (hi - lo)) - 1) for lo, hi in itertools.pairwise(edges)]


def near_groups(hashes: Mapping[int, int], distance: int = NEAR) -> list[list[int]]:
    """Groups of two or more ids whose hashes chain within `distance`, each sorted."""
    keys = sorted(hashes)
    if len(keys) < 2:
        return []
    import numpy as np

    # Equal hashes (re-encodes often are) are one value to compare: ids map to their value.
    values, of_key = np.unique(np.array([hashes[k] for k in keys], np.uint64), return_inverse=True)
    parent = list(range(len(values)))

    def root(v: int) -> int:
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    for a, b in _close_pairs(values, distance).tolist():
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = defaultdict(list)
    for key, value in zip(keys, of_key.tolist(), strict=True):
        groups[root(value)].append(key)
    return sorted(g for g in groups.values() if len(g) > 1)


def _close_pairs(values: npt.NDArray[np.uint64], distance: int) -> npt.NDArray[np.int64]:
    """(i, j), i < j, of distinct values within `distance`: within each block's buckets only,
    compared a slice of rows at a time in numpy (memory stays under ~CHUNK x bucket)."""
    import numpy as np

    found = [np.empty((0, 2), np.int64)]
    for shift, mask in _blocks(distance):
        block = (values >> np.uint64(shift)) & np.uint64(mask)
        order = np.argsort(block, kind="stable")
        edges = np.flatnonzero(np.diff(block[order])) + 1
        for members in np.split(order, edges):
            for start in range(0, len(members) - 1, CHUNK):
                rows = members[start : start + CHUNK]
                near = np.bitwise_count(values[rows, None] ^ values[None, members]) <= distance
                i, j = np.nonzero(near)
                a, b = rows[i], members[j]
                found.append(np.stack([a[a < b], b[a < b]], axis=1))
    return np.unique(np.concatenate(found), axis=0)


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
