"""A JPEG that needs no new pixels is stored with its coded data untouched; framed photos
are cut at a scale that still leaves the target size."""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import skimage
from imaging_helpers import cut, decode, encode
from PIL import Image

from harvester.imaging import CorruptImage, Metadata, SizeRules, process

PHOTOS = Path(skimage.__file__).parent / "data"
RULES = SizeRules(min_side=300)
META = Metadata(lat=50.85, lon=4.35, artist="Harvester Test")


def _astronaut(**params: object) -> bytes:
    with Image.open(PHOTOS / "astronaut.png") as im:
        return encode(im.convert("RGB"), quality=92, **params)


def _scan_data(jpeg: bytes) -> bytes:
    """Everything from the first start-of-scan on: the coded picture."""
    return jpeg[jpeg.index(b"\xff\xda") :]


def _sources() -> dict[str, bytes]:
    return {
        "shipped camera JPEG": (PHOTOS / "hubble_deep_field.jpg").read_bytes(),
        "baseline": _astronaut(),
        "progressive": _astronaut(progressive=True),
        "with restart markers": _astronaut(restart_marker_blocks=4),
    }


@pytest.mark.parametrize("name", list(_sources()))
def test_a_jpeg_needing_no_new_pixels_decodes_to_exactly_the_source(name: str) -> None:
    source = _sources()[name]
    result = process(source, RULES, META)

    assert np.array_equal(np.asarray(decode(result.jpeg)), np.asarray(decode(source)))
    assert _scan_data(result.jpeg) == _scan_data(source)
    assert (result.width, result.height) == decode(source).size
    assert result.frame == (0, 0, 0, 0)
    gps = decode(result.jpeg).getexif().get_ifd(0x8825)
    assert gps[2][0] == 50 and gps[1] == "N"


def test_kept_jpeg_carries_our_metadata_and_its_icc_profile_but_not_others() -> None:
    foreign = Image.Exif()
    foreign[0x013B] = "Someone Else"  # Artist
    icc = b"\x00\x00\x02\x0cfake profile bytes"
    with Image.open(PHOTOS / "astronaut.png") as im:
        source = encode(im.convert("RGB"), exif=foreign.tobytes(), icc_profile=icc, comment="hi")
    result = process(source + b"trailing junk after the image", RULES, META)
    stored = decode(result.jpeg)

    assert stored.getexif()[0x013B] == "Harvester Test"
    assert stored.info["icc_profile"] == icc
    assert b"Someone Else" not in result.jpeg and b"trailing junk" not in result.jpeg
    assert "comment" not in stored.info
    assert result.jpeg.endswith(b"\xff\xd9")


def test_a_truncated_jpeg_is_refused_not_kept() -> None:
    source = _astronaut()
    with pytest.raises(CorruptImage):
        process(source[: len(source) * 2 // 3], RULES, META)


def test_a_progressive_jpeg_damaged_in_its_last_scan_is_refused_not_kept() -> None:
    """Its last scan refines fine detail that the small check decode does not show: the
    check still reads it, or a damaged file would be stored as it is."""
    source = bytearray(_astronaut(progressive=True))
    last_scan = source.rindex(b"\xff\xda")
    at = last_scan + 40 + (len(source) - last_scan - 80) // 10
    noise = random.Random(1)
    for i in range(at, at + 16):
        if source[i] != 0xFF:  # no marker made or unmade: the stream still walks
            source[i] = noise.randrange(256)
    with pytest.raises(CorruptImage):
        process(bytes(source), RULES, META)


def test_rotated_or_framed_jpegs_get_new_pixels(photo: Callable[..., bytes]) -> None:
    source = photo(width=800, height=600, exif_orientation=6)  # stored 600 x 800, turned
    rotated = process(source, RULES, META)
    framed = process(photo(width=800, height=600, frames=((20, (255, 255, 255)),)), RULES, META)

    assert decode(source).size == (600, 800) and decode(rotated.jpeg).size == (800, 600)
    assert framed.frame == (23, 23, 23, 23) and (framed.width, framed.height) == (754, 554)


def test_a_framed_photo_is_stored_at_the_target_size(photo: Callable[..., bytes]) -> None:
    # Cut from the 1/2-scale decode, the picture would be 974 px wide: decoded again at
    # full size, the inside of the frame still has the 1024 px the rules ask for.
    data = photo(seed=21, width=2048, height=1536, frames=((51, (255, 255, 255)),))
    result = process(data, SizeRules(), META)

    width = cut(51, (2048, 1536))
    assert abs(result.frame[0] - width) <= 2 and abs(result.frame[1] - width) <= 2
    inner_w = 2048 - result.frame[1] - result.frame[3]
    inner_h = 1536 - result.frame[0] - result.frame[2]
    assert (result.width, result.height) == (1024, round(inner_h * 1024 / inner_w))
    stored = np.asarray(decode(result.jpeg), dtype=np.int16)
    assert np.abs(stored[:4] - 255).max() > 40  # no white band left on top


def test_an_unframed_photo_skips_the_second_decode(photo: Callable[..., bytes]) -> None:
    result = process(photo(seed=22, width=2048, height=1536), SizeRules(), META)

    assert (result.width, result.height) == (1024, 768)
    assert Image.open(io.BytesIO(result.jpeg)).size == (1024, 768)
