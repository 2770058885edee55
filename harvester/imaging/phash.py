"""A 64-bit perceptual hash (DCT pHash) of a decoded picture: same scene, near hash.

The picture is boxed down to 32x32 grey, its 2-D DCT taken, and the 8x8 lowest
frequencies but the DC term compared with their median. Re-encoding, resizing and a
few per cent of crop move few bits; different photos differ in about half of them.
Costs about 0.2 ms of CPU on an already decoded 1024 px picture.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt
from PIL import Image

from harvester.imaging.cv import opencv

SIZE = 32
LOW = 8


@functools.cache
def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)
    matrix = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n))
    matrix[0] /= np.sqrt(2)
    scaled: np.ndarray = matrix * np.sqrt(2 / n)
    return scaled


def perceptual_hash(picture: Image.Image | npt.NDArray[np.uint8]) -> int:
    """The hash as an unsigned 64-bit integer (the same for a picture and its pixels)."""
    # Every 4th pixel or so, then 8x8 boxes: a tenth of the cost of boxing every pixel,
    # and still an average of 64 samples per cell.
    if isinstance(picture, Image.Image):
        sampled = picture.resize((SIZE * 8, SIZE * 8), Image.Resampling.NEAREST)
    else:  # OpenCV's exact nearest picks the very pixels Pillow's does (tested), no copy
        cv2 = opencv()
        nearest = cv2.resize(picture, (SIZE * 8, SIZE * 8), interpolation=cv2.INTER_NEAREST_EXACT)
        sampled = Image.fromarray(nearest, "RGB")
    small = sampled.resize((SIZE, SIZE), Image.Resampling.BOX)
    grey = np.asarray(small.convert("L"), dtype=np.float64)
    d = _dct_matrix(SIZE)
    low = (d @ grey @ d.T)[:LOW, :LOW].ravel()
    bits = low[1:] > np.median(low[1:])  # the DC term only says how bright
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return value << 1  # 63 bits from the DCT; the lowest bit stays 0


def hash_hex(value: int) -> str:
    return f"{value:016x}"


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()
