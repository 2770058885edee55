"""The benchmark corpus: photo-like JPEGs in the size mix real harvests see.

Mostly 2048x1536 camera-phone exports (~570 KB), some larger originals, some
smaller, some portrait, some with an artsy frame, a few progressive. Made with
the emulator's renderer, so every file is a pure function of its index and the
corpus is rebuilt only when its recipe list changes.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from harvester.emulator.images import ImageRecipe, render

MANIFEST = "manifest.json"
VERSION = 1

# (weight, width, height): a phone/camera mix, landscape first.
_SIZES: tuple[tuple[float, int, int], ...] = (
    (0.62, 2048, 1536),
    (0.10, 1536, 2048),
    (0.08, 3264, 2448),
    (0.04, 4032, 3024),
    (0.08, 1600, 1200),
    (0.05, 1024, 768),
    (0.03, 800, 600),
)
FRAMED_SHARE = 0.06
PROGRESSIVE_SHARE = 0.03
_FRAME_COLOURS = ((255, 255, 255), (0, 0, 0), (32, 32, 32), (240, 236, 224))


@dataclass(frozen=True)
class Item:
    name: str
    recipe: ImageRecipe


def recipes(count: int, seed: int = 1) -> list[Item]:
    """The corpus as a list of named recipes (deterministic in `count` and `seed`)."""
    rng = random.Random(seed)
    weights = [w for w, _, _ in _SIZES]
    items = []
    for index in range(count):
        _, width, height = rng.choices(_SIZES, weights)[0]
        frames: tuple[tuple[int, tuple[int, int, int]], ...] = ()
        if rng.random() < FRAMED_SHARE:
            bands = rng.randint(1, 2)
            frames = tuple(
                (rng.randint(8, 40) * width // 2048 or 4, rng.choice(_FRAME_COLOURS))
                for _ in range(bands)
            )
        recipe = ImageRecipe(
            seed=seed * 1_000_003 + index,
            width=width,
            height=height,
            frames=frames,
            progressive=rng.random() < PROGRESSIVE_SHARE,
            quality=rng.randint(86, 91),
        )
        items.append(Item(f"{index:06d}.jpg", recipe))
    return items


def _write(args: tuple[Path, Item]) -> int:
    root, item = args
    data = render(item.recipe)
    temp = root / f".{item.name}.tmp"
    temp.write_bytes(data)
    temp.replace(root / item.name)
    return len(data)


def build(root: Path, count: int, *, seed: int = 1, processes: int | None = None) -> list[Path]:
    """Make sure `root` holds the corpus; render only what is missing. Returns the files."""
    root.mkdir(parents=True, exist_ok=True)
    items = recipes(count, seed)
    manifest = root / MANIFEST
    # Through JSON once, so tuples compare equal to what the manifest reads back.
    wanted = json.loads(
        json.dumps({"version": VERSION, "seed": seed, "items": [asdict(i.recipe) for i in items]})
    )
    known = json.loads(manifest.read_text()) if manifest.is_file() else None
    stale = known is not None and (
        known.get("version") != VERSION
        or known.get("seed") != seed
        or known["items"][: len(items)] != wanted["items"][: len(known["items"])]
    )
    if stale:
        for old in root.glob("*.jpg"):
            old.unlink()
    missing = [i for i in items if not (root / i.name).is_file()]
    if missing:
        print(f"corpus: rendering {len(missing)} images into {root} ...", flush=True)
        with ProcessPoolExecutor(processes or os.cpu_count() or 1) as pool:
            list(pool.map(_write, [(root, i) for i in missing], chunksize=8))
    if known is None or stale or len(known["items"]) < len(items):
        manifest.write_text(json.dumps(wanted))
    return [root / i.name for i in items]


def describe(files: Sequence[Path]) -> str:
    sizes = [f.stat().st_size for f in files]
    total = sum(sizes)
    return f"{len(files)} JPEGs, {total / 2**20:.0f} MB, mean {total / len(files) / 1024:.0f} KB"
