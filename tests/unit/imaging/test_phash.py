"""Near-duplicate detection by perceptual hash on real photos (scikit-image's samples):
re-encoded, slightly cropped and resized copies against distinct photos."""

from __future__ import annotations

import io
import itertools
import time
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

from harvester.exporters.near_duplicates import NEAR
from harvester.imaging.phash import hamming, perceptual_hash

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image is a dev dependency")

PHOTOS = (
    "astronaut", "brick", "camera", "chelsea", "clock", "coffee", "coins", "colorwheel",
    "grass", "gravel", "horse", "hubble_deep_field", "immunohistochemistry", "logo", "moon",
    "page", "retina", "rocket", "text", "stereo_motorcycle", "cell",
)  # fmt: skip
DISTANCE = NEAR


def _photo(name: str) -> Image.Image:
    array = getattr(skimage_data, name)()
    if isinstance(array, tuple):
        array = array[0]
    if array.dtype != np.uint8:
        array = array.astype(np.float64)
        array = (255 * (array - array.min()) / max(1e-9, float(np.ptp(array)))).astype(np.uint8)
    return Image.fromarray(array).convert("RGB")


def _jpeg(im: Image.Image, quality: int) -> Image.Image:
    out = io.BytesIO()
    im.save(out, "JPEG", quality=quality)
    return Image.open(io.BytesIO(out.getvalue())).convert("RGB")


def _crop(im: Image.Image, share: float) -> Image.Image:
    dx, dy = round(im.width * share), round(im.height * share)
    return im.crop((dx, dy, im.width - dx, im.height - dy))


VARIANTS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "re-encoded q60": lambda im: _jpeg(im, 60),
    "re-encoded q30": lambda im: _jpeg(im, 30),
    "resized to half": lambda im: im.resize((im.width // 2, im.height // 2), Image.LANCZOS),
    "resized to 1024": lambda im: im.resize(
        (1024, round(1024 * im.height / im.width)), Image.BICUBIC
    ),
    "cropped 2% a side": lambda im: _crop(im, 0.02),
    "cropped 2%, resized, re-encoded": lambda im: _jpeg(
        _crop(im, 0.02).resize((im.width * 3 // 4, im.height * 3 // 4)), 70
    ),
}


def test_copies_are_near_and_distinct_photos_are_far():
    photos = {name: _photo(name) for name in PHOTOS}
    hashes = {name: perceptual_hash(im) for name, im in photos.items()}
    found = total = 0
    for make in VARIANTS.values():
        for name, im in photos.items():
            total += 1
            found += hamming(hashes[name], perceptual_hash(make(im))) <= DISTANCE
    pairs = list(itertools.combinations(PHOTOS, 2))
    false = sum(hamming(hashes[a], hashes[b]) <= DISTANCE for a, b in pairs)
    recall, fpr = found / total, false / len(pairs)
    print(
        f"\nnear-duplicates at Hamming <= {DISTANCE}: recall {recall:.3f} ({found}/{total}),"
        f" false-positive rate {fpr:.4f} ({false}/{len(pairs)} distinct pairs)"
    )
    assert recall >= 0.95 and fpr <= 0.01


def test_the_hash_costs_a_fraction_of_a_millisecond():
    im = _photo("coffee").resize((1024, 683))
    start = time.process_time()
    for _ in range(50):
        perceptual_hash(im)
    assert (time.process_time() - start) / 50 < 0.001  # CPU time: not disturbed by load


def test_the_hash_is_deterministic_and_64_bits():
    im = _photo("astronaut")
    assert perceptual_hash(im) == perceptual_hash(im.copy()) < 2**64


def test_pixels_hash_as_their_picture_does() -> None:
    # The pipeline hashes numpy pixels (views of a crop too); the hashes stored before it
    # did were of Pillow pictures: the same photo must hash alike either way.
    for name in PHOTOS:
        im = _photo(name)
        pixels = np.asarray(im)
        assert perceptual_hash(pixels) == perceptual_hash(im), name
        inner = pixels[7:-5, 3:-11]
        assert perceptual_hash(inner) == perceptual_hash(Image.fromarray(inner.copy())), name
