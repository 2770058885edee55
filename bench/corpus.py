"""The benchmark's workloads: real-photo JPEGs in the size mixes users meet.

- mixed: web photos, mostly 2048x1536 phone exports, some 1600x1200, 4000x3000 and
  800x600, 16% progressive, 20% framed;
- camera: originals of 3000-4000 px, as cameras and phones write them;
- sized: already at most 1024 px (what Flickr Large and Mapillary's 1024 thumbnails serve),
  30% progressive: the common case for a harvester.

Every file is a pure function of its recipe (`bench.photos`), so a corpus is rendered once
and only re-rendered when its recipe list changes.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.photos import Photo, render

MANIFEST = "manifest.json"
VERSION = 2

Mix = tuple[tuple[float, int, int], ...]  # (weight, width, height)


@dataclass(frozen=True)
class Workload:
    name: str
    sizes: Mix
    progressive: float
    framed: float
    share: float = 1.0  # of BENCH_IMAGES: big originals are slow to render and to fetch


WORKLOADS = (
    Workload(
        "mixed",
        ((0.55, 2048, 1536), (0.08, 1536, 2048), (0.13, 1600, 1200), (0.04, 4000, 3000),
         (0.10, 800, 600), (0.10, 1024, 768)),
        progressive=0.16,
        framed=0.20,
    ),
    Workload(
        "camera",
        ((0.35, 4000, 3000), (0.25, 4032, 3024), (0.15, 3264, 2448), (0.15, 3000, 2000),
         (0.10, 3024, 4032)),
        progressive=0.05,
        framed=0.05,
        share=0.25,
    ),
    Workload(
        "sized",
        ((0.55, 1024, 768), (0.15, 768, 1024), (0.15, 1024, 683), (0.15, 1000, 750)),
        progressive=0.30,
        framed=0.05,
    ),
)  # fmt: skip
_FRAME_COLOURS = ((255, 255, 255), (0, 0, 0), (32, 32, 32), (240, 236, 224))


@dataclass(frozen=True)
class Item:
    name: str
    photo: Photo


def count_for(workload: Workload, images: int) -> int:
    return max(20, round(images * workload.share))


def recipes(workload: Workload, count: int, seed: int = 1) -> list[Item]:
    """The workload's corpus as named recipes (deterministic in `count` and `seed`)."""
    rng = random.Random(f"{workload.name}:{seed}")
    weights = [w for w, _, _ in workload.sizes]
    items = []
    for index in range(count):
        _, width, height = rng.choices(workload.sizes, weights)[0]
        frame = None
        if rng.random() < workload.framed:
            frame = (rng.randint(8, 40) * width // 2048 or 4, rng.choice(_FRAME_COLOURS))
        photo = Photo(
            seed=seed * 1_000_003 + index,
            width=width,
            height=height,
            quality=rng.randint(86, 92),
            progressive=rng.random() < workload.progressive,
            frame=frame,
        )
        items.append(Item(f"{workload.name}-{index:06d}.jpg", photo))
    return items


def _write(args: tuple[Path, Item]) -> int:
    root, item = args
    data = render(item.photo)
    temp = root / f".{item.name}.tmp"
    temp.write_bytes(data)
    temp.replace(root / item.name)
    return len(data)


def build(root: Path, items: Sequence[Item], *, processes: int | None = None) -> list[Path]:
    """Make sure `root` holds these items; render only what is missing. Returns the files."""
    root.mkdir(parents=True, exist_ok=True)
    manifest = root / MANIFEST
    # Through JSON once, so tuples compare equal to what the manifest reads back.
    wanted = json.loads(json.dumps({i.name: asdict(i.photo) for i in items}))
    known = json.loads(manifest.read_text()) if manifest.is_file() else {}
    if known.get("version") != VERSION:
        known = {"version": VERSION, "items": {}}
    for name, recipe in wanted.items():
        if known["items"].get(name, recipe) != recipe:
            (root / name).unlink(missing_ok=True)
    missing = [i for i in items if not (root / i.name).is_file()]
    if missing:
        print(f"corpus: rendering {len(missing)} images into {root} ...", flush=True)
        with ProcessPoolExecutor(processes or os.cpu_count() or 1) as pool:
            list(pool.map(_write, [(root, i) for i in missing], chunksize=4))
    known["items"].update(wanted)
    manifest.write_text(json.dumps(known))
    return [root / i.name for i in items]


def describe(files: Sequence[Path]) -> str:
    sizes = [f.stat().st_size for f in files]
    total = sum(sizes)
    return f"{len(files)} JPEGs, {total / 2**20:.0f} MB, mean {total / len(files) / 1024:.0f} KB"
