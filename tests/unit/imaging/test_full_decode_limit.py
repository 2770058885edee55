"""Formats without scaled decoding (PNG, WebP) are refused above a pixel count that bounds
a worker's memory; JPEGs of the same size are still DCT-scaled and taken."""

from __future__ import annotations

import io
import resource
import struct
import time

import pytest
from PIL import Image

from harvester.imaging import CorruptImage, DecompressionBomb, Metadata, SizeRules, process


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


def _jpeg(size: tuple[int, int], *, progressive: bool, subsampling: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (120, 130, 140)).save(
        out, format="JPEG", quality=90, progressive=progressive, subsampling=subsampling
    )
    return out.getvalue()


def test_a_progressive_jpeg_whose_coefficients_outgrow_a_workers_memory_is_a_bomb() -> None:
    """libjpeg holds every DCT coefficient of a progressive JPEG (2 bytes a sample) however
    far it scales the decode: a 100 MP 4:4:4 one of 1.2 MB peaked at 619 MB in a worker.
    Here 2400x2400 at 4:4:4 holds 35 MB of them, over a 20 MB budget; at 4:2:0, or
    baseline (decoded a band at a time), the same picture is taken."""
    rules = SizeRules(max_decode_bytes=20 * 2**20)
    data = _jpeg((2_400, 2_400), progressive=True, subsampling=0)
    with pytest.raises(DecompressionBomb, match="progressive") as caught:
        process(data, rules, Metadata())
    assert caught.value.reason == "bomb"
    assert process(_jpeg((2_400, 2_400), progressive=True, subsampling=2), rules, Metadata())
    assert process(_jpeg((2_400, 2_400), progressive=False, subsampling=0), rules, Metadata())


def test_a_progressive_header_claiming_a_huge_picture_is_refused_before_any_decode() -> None:
    """A few kilobytes whose frame header says 8000x8000 (4:4:4): 384 MB of coefficients."""
    data = bytearray(_jpeg((64, 64), progressive=True, subsampling=0))
    sof = data.index(b"\xff\xc2")
    data[sof + 5 : sof + 9] = (8_000).to_bytes(2, "big") * 2  # height, then width
    with pytest.raises(DecompressionBomb, match="progressive"):
        process(bytes(data), SizeRules(), Metadata())


def _sequential_header(size: tuple[int, int], *, first_scan_components: int) -> bytes:
    """A baseline (SOF0) JPEG's headers claiming `size` in three 1x1 components, then one
    scan of a grey picture's data coding `first_scan_components` of them."""
    out = io.BytesIO()
    Image.new("L", (64, 64), 128).save(out, format="JPEG", quality=90)
    data = bytearray(out.getvalue())
    sof = data.index(b"\xff\xc0")
    frame = b"".join(bytes([ident, 0x11, 0]) for ident in (1, 2, 3))
    data[sof : sof + 13] = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, size[1], size[0], 3) + frame
    sos = data.index(b"\xff\xda")
    scan = b"".join(bytes([ident, 0]) for ident in range(1, first_scan_components + 1))
    header = struct.pack(">HB", 6 + 2 * first_scan_components, first_scan_components)
    data[sos : sos + 10] = b"\xff\xda" + header + scan + b"\x00\x3f\x00"
    return bytes(data)


def test_a_sequential_jpeg_coded_a_component_a_scan_is_held_whole_and_a_bomb() -> None:
    """libjpeg holds every coefficient of a sequential JPEG whose first scan codes fewer
    components than its frame, as of a progressive one: a 49 kB one claiming 10000x12000
    peaked at 730 MB in a worker. Claiming 8000x8000 (384 MB of coefficients), one coded a
    component a scan is refused from its header; interleaved, it is decoded (and cut short)."""
    with pytest.raises(DecompressionBomb, match="multi-scan"):
        process(
            _sequential_header((8_000, 8_000), first_scan_components=1), SizeRules(), Metadata()
        )
    with pytest.raises(CorruptImage):
        process(
            _sequential_header((8_000, 8_000), first_scan_components=3), SizeRules(), Metadata()
        )
