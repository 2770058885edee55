"""simplejpeg decodes colour JPEGs to the very pixels Pillow does, at every DCT scale."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

from harvester.imaging.codec import decode_scaled, encode


@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("at_least", [(1000, 750), (500, 375), (300, 300), (250, 188), (1, 1)])
def test_scaled_decode_matches_pillow_draft(
    photo_pixels: Callable[..., Image.Image], progressive: bool, at_least: tuple[int, int]
) -> None:
    out = io.BytesIO()
    photo_pixels(seed=3, width=1000, height=750).save(
        out, "JPEG", quality=90, progressive=progressive
    )
    data = out.getvalue()
    ours = decode_scaled(data, (1000, 750), at_least)
    with Image.open(io.BytesIO(data)) as im:
        im.draft("RGB", at_least)
        theirs = np.asarray(im.convert("RGB"))
    assert ours.shape == theirs.shape
    assert np.array_equal(ours, theirs)


def test_encode_is_a_jpeg_of_the_pixels(photo_pixels: Callable[..., Image.Image]) -> None:
    pixels = np.asarray(photo_pixels(seed=4, width=640, height=480))
    view = pixels[10:-10, 20:-20]  # a crop is a strided view: encoded all the same
    with Image.open(io.BytesIO(encode(view, 90))) as im:
        assert im.format == "JPEG"
        assert im.size == (600, 460)
        error = np.abs(np.asarray(im.convert("RGB"), dtype=np.int16) - view).mean()
    assert error < 3
