"""A JPEG cut short and then closed with an end marker (a cut transfer "closed", a broken
upload) is truncated whatever its colour space, orientation or progression: Pillow's decoder
ignores libjpeg's warning and fills the rest grey, so every JPEG is decoded by libjpeg with
its warnings as errors. Valid ones still decode to the very pixels Pillow gives."""

from __future__ import annotations

import io
import re
from collections.abc import Callable

import numpy as np
import pytest
from imaging_helpers import KINDS, encode, jpeg_of
from PIL import Image

from harvester.imaging import CorruptImage, Metadata, SizeRules, process
from harvester.imaging.decode import decode_upright, open_header

RULES = SizeRules()
EOI = b"\xff\xd9"
# What a viewer does to stored pixels to show them upright, in Pillow's words.
PILLOW_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_jpeg_cut_inside_its_scan_data_and_closed_is_truncated(
    photo_pixels: Callable[..., Image.Image], kind: str, progressive: bool
) -> None:
    whole = jpeg_of(photo_pixels(seed=21), kind, progressive=progressive)
    scans = whole.index(b"\xff\xda")
    for share in (0.2, 0.5, 0.9):
        cut = scans + int((len(whole) - scans) * share)
        with pytest.raises(CorruptImage) as caught:
            process(whole[:cut] + EOI, RULES, Metadata())
        assert caught.value.reason == "truncated", (share, str(caught.value))


@pytest.mark.parametrize("kind", KINDS)
def test_a_progressive_jpeg_closed_between_two_scans_is_truncated(
    photo_pixels: Callable[..., Image.Image], kind: str
) -> None:
    """The scans before such a cut are whole, so libjpeg decodes them with no warning, blurred
    or blocky: only the scans' headers tell that coefficients were never sent."""
    whole = jpeg_of(photo_pixels(seed=22), kind, progressive=True)
    first = whole.index(b"\xff\xda")
    cuts = [at.start() for at in re.finditer(b"\xff[\xc4\xda]", whole) if at.start() > first]
    assert len(cuts) > 3
    for cut in cuts:
        with pytest.raises(CorruptImage) as caught:
            process(whole[:cut] + EOI, RULES, Metadata())
        assert caught.value.reason == "truncated", cut


def test_a_jpeg_closed_where_a_restart_marker_was_due_is_truncated(
    photo_pixels: Callable[..., Image.Image],
) -> None:
    """libjpeg names that one "found marker 0xd9 instead of RSTn", not a premature end."""
    whole = encode(photo_pixels(seed=23), quality=90, restart_marker_blocks=4)
    scans = whole.index(b"\xff\xda")
    restarts = [at.start() for at in re.finditer(b"\xff[\xd0-\xd7]", whole) if at.start() > scans]
    with pytest.raises(CorruptImage) as caught:
        process(whole[: restarts[len(restarts) // 2]] + EOI, RULES, Metadata())
    assert caught.value.reason == "truncated"


@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
@pytest.mark.parametrize("at_least", [(1000, 750), (500, 375), (125, 94)])
@pytest.mark.parametrize(
    ("kind", "orientation"),
    [("colour", 1), ("grey", 1), ("cmyk", 1), *(("rotated", o) for o in range(2, 9))],
)
def test_a_valid_jpeg_decodes_upright_to_the_pixels_pillow_gives(
    photo_pixels: Callable[..., Image.Image],
    kind: str,
    orientation: int,
    progressive: bool,
    at_least: tuple[int, int],
) -> None:
    data = jpeg_of(photo_pixels(seed=24), kind, orientation, progressive=progressive)
    with Image.open(io.BytesIO(data)) as im:
        w, h = at_least
        im.draft("RGB", (h, w) if orientation >= 5 else (w, h))
        theirs = im.convert("RGB")
    if orientation in PILLOW_UPRIGHT:
        theirs = theirs.transpose(PILLOW_UPRIGHT[orientation])
    ours = decode_upright(open_header(data), data, at_least)
    assert np.array_equal(ours, np.asarray(theirs))


@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_whole_jpeg_of_every_kind_is_stored_upright(
    photo_pixels: Callable[..., Image.Image], kind: str, progressive: bool
) -> None:
    result = process(
        jpeg_of(photo_pixels(seed=25), kind, progressive=progressive), RULES, Metadata()
    )
    assert (result.width, result.height) == (1000, 750)
