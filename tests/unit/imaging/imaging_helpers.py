"""Helpers for the imaging tests: real encoded images from the emulator's renderer."""

from __future__ import annotations

import io
import math
from functools import lru_cache

import numpy as np
from PIL import Image

from harvester.emulator.images import ImageRecipe, render
from harvester.imaging import fit
from harvester.imaging.frame import MARGIN_FRACTION, MIN_MARGIN


def cut(band: int, size: tuple[int, int], max_side: int = 1024) -> int:
    """What is cut from a source of `size` with a frame `band` px wide: the band plus the
    margin, found on the picture decoded for `max_side` and measured in source pixels."""
    decoded = fit(*size, max_side)
    margin = max(MIN_MARGIN, math.ceil(MARGIN_FRACTION * min(decoded)))
    return band + round(margin * size[0] / decoded[0])


@lru_cache(maxsize=64)
def rendered(recipe: ImageRecipe) -> bytes:
    """Renders are deterministic; several tests share the same bytes."""
    return render(recipe)


def decode(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def encode(im: Image.Image, fmt: str = "JPEG", **params: object) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **params)
    return out.getvalue()


KINDS = ["colour", "grey", "cmyk", "rotated"]


def jpeg_of(picture: Image.Image, kind: str, orientation: int = 6, **params: object) -> bytes:
    """Pillow's JPEG of `picture` as a colour, grey, CMYK (Adobe) or EXIF-rotated file."""
    if kind == "grey":
        return encode(picture.convert("L"), quality=90, **params)
    if kind == "cmyk":
        return encode(picture.convert("CMYK"), quality=90, **params)
    if kind == "rotated":
        exif = Image.Exif()
        exif[0x0112] = orientation
        if orientation >= 5:  # stored a quarter turn away, its sides swapped
            picture = picture.transpose(Image.Transpose.ROTATE_90)
        return encode(picture, quality=90, exif=exif.tobytes(), **params)
    return encode(picture, quality=90, **params)


def psnr(a: Image.Image, b: Image.Image) -> float:
    assert a.size == b.size
    diff = np.asarray(a.convert("RGB"), dtype=np.float64) - np.asarray(
        b.convert("RGB"), dtype=np.float64
    )
    mse = float(np.mean(diff * diff))
    return float("inf") if mse == 0 else 10 * float(np.log10(255**2 / mse))
