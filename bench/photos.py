"""Real-photo content for the benchmark, from the photographs bundled in scikit-image's wheel.

A synthetic picture compresses and decodes unlike a photo, so the corpus is cut from real
ones: a random crop of one photograph, scaled to the size wanted (Lanczos), with light sensor
grain so an upscaled crop still carries the fine detail a camera file has. Every image is a
pure function of its recipe.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

# Colour photographs only (the scientific and grey images are not what users harvest).
PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "hubble_deep_field.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "retina.jpg",
    "rocket.jpg",
    "ihc.png",
)
GRAIN = 3.0  # standard deviation per channel, in 8-bit levels: a phone at base ISO


@dataclass(frozen=True)
class Photo:
    seed: int
    width: int
    height: int
    quality: int = 90
    progressive: bool = False
    frame: tuple[int, tuple[int, int, int]] | None = None  # (width px, colour)


_GRAIN_TILE = 509  # prime, so the tiling does not line up with 8x8 JPEG blocks


@cache
def _grain() -> npt.NDArray[np.int16]:
    noise = np.random.default_rng(0).normal(0.0, GRAIN, (_GRAIN_TILE, _GRAIN_TILE, 3))
    return np.round(noise).astype(np.int16)


@cache
def _source(name: str) -> Image.Image:
    import skimage  # the bench's dependency only

    with Image.open(Path(skimage.__file__).parent / "data" / name) as im:
        return im.convert("RGB")


def picture(photo: Photo) -> Image.Image:
    rng = np.random.default_rng(photo.seed)
    source = _source(PHOTOS[int(rng.integers(len(PHOTOS)))])
    if rng.random() < 0.5:
        source = ImageOps.mirror(source)
    # The largest crop of the source with the wanted aspect, shifted at random.
    aspect = photo.width / photo.height
    w = min(source.width, round(source.height * aspect))
    h = min(source.height, round(w / aspect))
    left = int(rng.integers(source.width - w + 1))
    top = int(rng.integers(source.height - h + 1))
    crop = source.crop((left, top, left + w, top + h))
    img = crop.resize((photo.width, photo.height), Image.Resampling.BICUBIC)
    pixels = np.asarray(img, dtype=np.int16)
    dy, dx = (int(v) for v in rng.integers(_GRAIN_TILE, size=2))
    grain = np.roll(_grain(), (dy, dx), axis=(0, 1))
    reps = (-(-photo.height // _GRAIN_TILE), -(-photo.width // _GRAIN_TILE), 1)
    pixels += np.tile(grain, reps)[: photo.height, : photo.width]
    out = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    if photo.frame is not None:
        band, colour = photo.frame
        framed = Image.new("RGB", out.size, colour)
        inner = out.resize((out.width - 2 * band, out.height - 2 * band))
        framed.paste(inner, (band, band))
        out = framed
    return out


def render(photo: Photo) -> bytes:
    out = io.BytesIO()
    picture(photo).save(out, "JPEG", quality=photo.quality, progressive=photo.progressive)
    return out.getvalue()
