"""Keys repeated within one input file, found in bounded memory however long the file.

An 11-million-line list cannot keep its ids in a Python set (~1 GB). Each key is kept as an
8-byte hash beside its line number (12 bytes a line); the repeats are found once at the end
by sorting the hashes. Two different ids share a hash with odds about n^2 / 2^65 (3e-6 at
11 million lines). numpy is loaded only when there are two keys to compare.
"""

from __future__ import annotations

from array import array
from hashlib import blake2b

CHUNK = 1 << 20


class RepeatedKeys:
    """Add (key, line) pairs; ``repeats()`` names each repeated line and the key's first."""

    def __init__(self) -> None:
        self._hashes = array("Q")
        self._lines = array("I")  # 4 bytes: line numbers below 4 billion

    def add(self, key: str, line: int) -> None:
        digest = blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        self._hashes.append(int.from_bytes(digest, "little"))
        self._lines.append(line)

    def repeats(self) -> list[tuple[int, int]]:
        """(line, first line of the same key) for every repeated line, in line order."""
        if len(self._hashes) < 2:
            return []
        import numpy as np

        hashes = np.frombuffer(self._hashes, dtype=np.uint64)
        ordered = np.sort(hashes)
        repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
        del ordered
        if not len(repeated):
            return []
        lines = np.frombuffer(self._lines, dtype=np.uint32)
        first: dict[int, int] = {}
        found: list[tuple[int, int]] = []
        for start in range(0, len(hashes), CHUNK):
            chunk = hashes[start : start + CHUNK]
            where = np.minimum(np.searchsorted(repeated, chunk), len(repeated) - 1)
            for k in np.flatnonzero(repeated[where] == chunk):
                value, line = int(chunk[k]), int(lines[start + k])
                if value in first:
                    found.append((line, first[value]))
                else:
                    first[value] = line
        return found
