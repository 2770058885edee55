"""The single-core floor: bare decode + resize + encode of the corpus in one process.

No network, no queue, no frame detection, no EXIF, no hashing, no files: the
least CPU any harvester of this corpus must spend per image with Pillow and
libjpeg-turbo (DCT-scaled decode, then the remaining resize, then JPEG q90).
`floor x cores` is the throughput ceiling the real daemon is compared with.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

MAX_SIDE = 1024
QUALITY = 90


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


def target_size(width: int, height: int, max_side: int = MAX_SIDE) -> tuple[int, int]:
    longest = max(width, height)
    if longest <= max_side:
        return (width, height)
    scale = max_side / longest
    return (max(1, round(width * scale)), max(1, round(height * scale)))


def minimal(data: bytes) -> bytes:
    """Decode at the smallest DCT scale still >= target, finish the resize, encode."""
    im = Image.open(io.BytesIO(data))
    target = target_size(*im.size)
    im.draft("RGB", target)
    picture = im.convert("RGB")
    if picture.size != target:
        picture = picture.resize(target, Image.Resampling.HAMMING, reducing_gap=2.0)
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=QUALITY)
    return out.getvalue()


def measure_loaded(files: Sequence[Path], processes: int, sample: int = 200) -> Floor:
    """The floor with every core busy, as in a real run: `processes` copies side by side.

    A core that shares the machine with busy neighbours runs slower than one alone
    (clock, caches, memory bandwidth), so this, not `measure`, bounds `floor x cores`.
    """
    with ProcessPoolExecutor(processes) as pool:
        floors = list(pool.map(measure, [files] * processes, [sample] * processes))
    return Floor(sum(f.images for f in floors), sum(f.cpu_s for f in floors))


def measure(files: Sequence[Path], sample: int = 400) -> Floor:
    """CPU time of `minimal` over an evenly spread sample of the corpus (bytes preloaded)."""
    step = max(1, len(files) // sample)
    blobs = [f.read_bytes() for f in files[::step]]
    minimal(blobs[0])  # codecs loaded before the clock starts
    started = time.process_time()
    for data in blobs:
        minimal(data)
    return Floor(len(blobs), time.process_time() - started)
