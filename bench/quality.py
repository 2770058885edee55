"""Image quality of harvester's output against a careful reference, on a sample of a workload.

The reference decodes the source fully and resizes it with Lanczos to the stored size; the
PSNR between that and the stored JPEG says what DCT-scaled decoding and the faster resize
cost. Framed sources are left out: their stored picture is the content inside the frame.
A source kept as it is (pass-through) decodes to the reference exactly: it is counted as
identical and left out of the mean, which would otherwise be infinite.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from bench.corpus import Item

SAMPLE = 30


@dataclass(frozen=True)
class Quality:
    images: int
    identical: int
    mean_psnr_db: float
    min_psnr_db: float


def psnr(a: Image.Image, b: Image.Image) -> float:
    x = np.asarray(a.convert("RGB"), dtype=np.float64)
    y = np.asarray(b.convert("RGB"), dtype=np.float64)
    mse = float(np.mean((x - y) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def measure(db: Path, data_root: Path, corpus_root: Path, items: Sequence[Item]) -> Quality | None:
    unframed = [item.name for item in items if item.photo.frame is None]
    with sqlite3.connect(db) as connection:
        stored = {
            url.rsplit("/", 1)[-1]: path
            for url, path in connection.execute(
                "SELECT source_url, path FROM images WHERE state = 'stored'"
            )
        }
    scores = []
    for name in [n for n in unframed if n in stored][:SAMPLE]:
        with Image.open(data_root / stored[name]) as ours, Image.open(corpus_root / name) as src:
            reference = src.convert("RGB").resize(ours.size, Image.Resampling.LANCZOS)
            scores.append(psnr(ours, reference))
    if not scores:
        return None
    finite = [s for s in scores if math.isfinite(s)]
    return Quality(
        len(scores),
        len(scores) - len(finite),
        sum(finite) / len(finite) if finite else math.inf,
        min(finite, default=math.inf),
    )
