"""The floor: harvester's pixel stage alone, on the workload's bytes, in one process per core.

No network, no queue, no hashing of the source, no files: `harvester.imaging.process`, the
fastest correct pixel path measured here for every case (DCT-scaled decode, bilinear for
the rest, the frame check, pass-through of JPEGs that need no new pixels). What harvester
spends per stored image beyond this is the cost of everything else.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from harvester.imaging import ImagingError, Metadata, SizeRules, process

RULES = SizeRules()
META = Metadata(lat=50.0, lon=4.0, artist="bench", description={"provider": "urls"})


@dataclass(frozen=True)
class Floor:
    images: int
    cpu_s: float

    @property
    def ms_per_image(self) -> float:
        return 1000 * self.cpu_s / self.images

    @property
    def images_per_s(self) -> float:
        return self.images / self.cpu_s


def minimal(data: bytes) -> bytes:
    try:
        return process(data, RULES, META).jpeg
    except ImagingError:
        return b""


def measure_loaded(files: Sequence[Path], processes: int, sample: int = 150) -> Floor:
    """The floor with every core busy, as in a real run: `processes` copies side by side.

    A core that shares the machine with busy neighbours runs slower than one alone
    (clock, caches, memory bandwidth), so this bounds `floor x cores`.
    """
    with ProcessPoolExecutor(processes) as pool:
        floors = list(pool.map(measure, [files] * processes, [sample] * processes))
    return Floor(sum(f.images for f in floors), sum(f.cpu_s for f in floors))


def measure(files: Sequence[Path], sample: int = 150) -> Floor:
    """CPU time of the pixel stage over an evenly spread sample (bytes preloaded)."""
    step = max(1, len(files) // sample)
    blobs = [f.read_bytes() for f in files[::step]]
    minimal(blobs[0])  # codecs loaded before the clock starts
    started = time.process_time()
    for data in blobs:
        minimal(data)
    return Floor(len(blobs), time.process_time() - started)
