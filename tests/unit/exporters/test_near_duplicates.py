"""Grouping perceptual hashes by Hamming distance: the pigeonhole search finds what a
brute-force comparison finds."""

from __future__ import annotations

import itertools
import random

import pytest

from harvester.exporters.near_duplicates import groups_by_campaign, near_groups


def _flip(value: int, bits: int, rng: random.Random) -> int:
    for bit in rng.sample(range(64), bits):
        value ^= 1 << bit
    return value


def _brute(hashes: dict[int, int], d: int) -> list[list[int]]:
    parent = {k: k for k in hashes}

    def root(k: int) -> int:
        while parent[k] != k:
            k = parent[k]
        return k

    for a, b in itertools.combinations(sorted(hashes), 2):
        if (hashes[a] ^ hashes[b]).bit_count() <= d:
            parent[max(root(a), root(b))] = min(root(a), root(b))
    groups: dict[int, list[int]] = {}
    for k in sorted(hashes):
        groups.setdefault(root(k), []).append(k)
    return sorted(g for g in groups.values() if len(g) > 1)


@pytest.mark.parametrize("distance", [0, 3, 10, 20])
def test_pigeonhole_search_equals_brute_force(distance: int):
    rng = random.Random(distance)
    hashes: dict[int, int] = {}
    for scene in range(60):
        base = rng.getrandbits(64)
        for copy in range(rng.randint(1, 4)):
            hashes[scene * 10 + copy] = _flip(base, rng.randint(0, distance + 3), rng)
    assert near_groups(hashes, distance) == _brute(hashes, distance)


def test_chains_are_one_group_and_far_hashes_stay_alone():
    hashes = {1: 0, 2: 0b1111, 3: 0b1111_1111, 4: (1 << 64) - 1}  # 1-2: 4 bits, 2-3: 4 bits
    assert near_groups(hashes, 4) == [[1, 2, 3]]
    assert near_groups(hashes, 3) == []


def test_groups_are_per_campaign():
    rows = [
        ("a", 1, "00000000000000ff"),
        ("a", 2, "00000000000000fe"),
        ("b", 3, "00000000000000ff"),
    ]
    assert groups_by_campaign(rows, 2) == {"a": [[1, 2]]}
