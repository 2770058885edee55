"""A progressive JPEG's frame check reads its coarse scans only, and decides as the whole does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import simplejpeg
import skimage
from imaging_helpers import encode
from PIL import Image

from harvester.imaging import CorruptImage, Metadata, SizeRules, process
from harvester.imaging.scans import coarse_scans

PHOTOS = Path(skimage.__file__).parent / "data"
RULES = SizeRules(min_side=300)


def _astronaut(**params: object) -> bytes:
    with Image.open(PHOTOS / "astronaut.png") as im:
        return encode(im.convert("RGB"), quality=92, **params)


def _scan_headers(jpeg: bytes) -> list[tuple[int, int, int]]:
    """(first coefficient, last coefficient, successive-approximation high bit) of each scan."""
    found, at = [], jpeg.find(b"\xff\xda")
    while at >= 0:
        spectral = at + 5 + 2 * jpeg[at + 4]
        found.append((jpeg[spectral], jpeg[spectral + 1], jpeg[spectral + 2] >> 4))
        at = jpeg.find(b"\xff\xda", spectral)
    return found


def _quarter(jpeg: bytes) -> np.ndarray:
    return simplejpeg.decode_jpeg(jpeg, colorspace="RGB", min_width=128, min_height=128)


def test_the_coarse_scans_are_the_dc_and_first_low_ac_passes_and_look_like_the_whole() -> None:
    source = _astronaut(progressive=True)
    coarse = coarse_scans(source)

    assert coarse is not None and len(coarse) < len(source) * 2 // 3
    kept = _scan_headers(coarse)
    assert all(start == 0 or (refines == 0 and start <= 4) for start, _, refines in kept)
    assert len(kept) < len(_scan_headers(source))
    whole, rough = _quarter(source), _quarter(coarse)
    assert rough.shape == whole.shape == (128, 128, 3)
    assert np.abs(whole.astype(np.int16) - rough).mean() < 3


def test_a_baseline_jpeg_or_a_stream_cut_short_has_no_coarse_version() -> None:
    progressive = _astronaut(progressive=True)
    assert coarse_scans(_astronaut()) is None
    assert coarse_scans(progressive[: len(progressive) // 2]) is None
    assert coarse_scans(b"not a jpeg at all") is None


@pytest.mark.parametrize("band", [0, 12])
def test_a_progressive_jpeg_is_judged_framed_or_not_as_its_full_decode_judges(
    band: int,
) -> None:
    with Image.open(PHOTOS / "astronaut.png") as im:
        picture = im.convert("RGB")
    if band:
        framed = Image.new("RGB", (512 + 2 * band, 512 + 2 * band), (255, 255, 255))
        framed.paste(picture, (band, band))
        picture = framed
    result = process(encode(picture, quality=92, progressive=True), RULES, Metadata())

    assert (result.frame != (0, 0, 0, 0)) == bool(band)


@pytest.mark.parametrize("size", [(1024, 683), (800, 533)])
def test_a_thin_frame_of_a_progressive_jpeg_checked_at_half_scale_is_found_as_before(
    size: tuple[int, int],
) -> None:
    """A side not a multiple of 4 puts the frame check at 1/2 scale, whose 4x4 inverse DCT
    reads terms the coarse scans leave out: a 2 px band the full decode finds there, the
    coarse picture blurs away."""
    with Image.open(PHOTOS / "astronaut.png") as im:
        picture = im.convert("RGB").resize((size[0] - 4, size[1] - 4))
    framed = Image.new("RGB", size, (255, 255, 255))
    framed.paste(picture, (2, 2))
    result = process(encode(framed, quality=92, progressive=True), RULES, Metadata())

    assert result.frame != (0, 0, 0, 0)


def test_a_progressive_jpeg_cut_short_is_still_refused() -> None:
    source = _astronaut(progressive=True)
    with pytest.raises(CorruptImage):
        process(source[: len(source) * 2 // 3], RULES, Metadata())


def test_the_frame_check_of_a_kept_progressive_jpeg_decodes_only_its_coarse_scans(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from harvester.imaging import pipeline

    decoded: list[int] = []
    real = pipeline.decode_scaled

    def counting(data: bytes, *args: object) -> np.ndarray:
        decoded.append(len(data))
        return real(data, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "decode_scaled", counting)
    source = _astronaut(progressive=True)
    result = process(source, RULES, Metadata())

    assert result.width == 512 and decoded == [len(coarse_scans(source) or b"")]
