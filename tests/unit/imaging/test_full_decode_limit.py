"""Formats without scaled decoding (PNG, WebP) are refused above a pixel count that bounds
a worker's memory; JPEGs of the same size are still DCT-scaled and taken."""

from __future__ import annotations

import io
import resource
import time

import pytest
from PIL import Image

from harvester.imaging import DecompressionBomb, Metadata, SizeRules, process


def _tiny_file(fmt: str, size: tuple[int, int]) -> bytes:
    """A huge picture in a small file: one colour compresses to almost nothing."""
    out = io.BytesIO()
    mode = "1" if fmt == "PNG" else "L"
    Image.new(mode, size, 0).save(out, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    return out.getvalue()


@pytest.mark.parametrize(("fmt", "size"), [("PNG", (10_900, 10_900)), ("WEBP", (8_000, 8_000))])
def test_a_large_png_or_webp_is_refused_as_a_bomb_before_any_decode(
    fmt: str, size: tuple[int, int]
) -> None:
    data = _tiny_file(fmt, size)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.process_time()  # CPU: a loaded machine does not slow it
    with pytest.raises(DecompressionBomb, match="without scaled decoding") as caught:
        process(data, SizeRules(), Metadata())
    assert caught.value.reason == "bomb"
    assert time.process_time() - started < 0.3  # decoding alone takes 0.6 s or more
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 50_000  # no full decode (that would be >= 190 MB)


def test_a_png_under_the_full_decode_limit_is_processed() -> None:
    data = _tiny_file("PNG", (2_000, 1_500))
    assert process(data, SizeRules(), Metadata()).width == 1024
