"""Some of libjpeg's warnings leave every pixel: junk before the end marker or between two
header segments, an unknown JFIF version or Adobe colour transform, an ICC profile in bad
chunks. A JPEG with one is stored with the very pixels of the same file without it. What
means pixels lost or made up stays refused behind such a warning: strict decoding stops at
the first warning, so a cut or a bad code after it must still be found."""

from __future__ import annotations

import re
import struct
from collections.abc import Callable

import pytest
import simplejpeg
from imaging_helpers import KINDS, decode, jpeg_of
from PIL import Image

from harvester.imaging import CorruptImage, Metadata, Processed, SizeRules, process

RULES = SizeRules()
EOI = b"\xff\xd9"
JUNK = {"zeros": b"\x00" * 40, "text": b"bytes an editor wrote after the picture"}
# A colour one is kept as it came at the first size, decoded and encoded anew at the second.
SIZES = {"kept": (1000, 750), "resized": (1400, 1050)}


def _pixels(result: Processed) -> bytes:
    return decode(result.jpeg).tobytes()


def _before_end(data: bytes, junk: bytes) -> bytes:
    assert data.endswith(EOI)
    return data[:-2] + junk + EOI


def _in_header(data: bytes, junk: bytes) -> bytes:
    """`junk` between two header segments: just before the first quantisation table."""
    at = data.index(b"\xff\xdb")
    return data[:at] + junk + data[at:]


def _last_scan_cut(data: bytes, share: float) -> bytes:
    """`data` cut `share` of the way into its last scan's data (its only scan's, unless
    progressive): every scan header is there, and only the data tells."""
    scan = data.rindex(b"\xff\xda")
    begin = scan + 2 + struct.unpack(">H", data[scan + 2 : scan + 4])[0]
    return data[: begin + int((len(data) - 2 - begin) * share)]


def _warns(data: bytes, words: str) -> None:
    """libjpeg warns of `data` as said: the test reads past a real warning."""
    with pytest.raises(ValueError, match=words):
        simplejpeg.decode_jpeg(data)


@pytest.mark.parametrize(("size", "junk"), [("kept", "zeros"), ("resized", "text")])
@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
@pytest.mark.parametrize("kind", KINDS)
def test_junk_before_the_end_marker_leaves_the_pixels_of_the_file_without_it(
    photo_pixels: Callable[..., Image.Image], kind: str, progressive: bool, size: str, junk: str
) -> None:
    width, height = SIZES[size]
    whole = jpeg_of(
        photo_pixels(seed=31, width=width, height=height), kind, progressive=progressive
    )
    junked = _before_end(whole, JUNK[junk])
    _warns(junked, "extraneous bytes before marker 0xd9")
    expected, stored = process(whole, RULES, Metadata()), process(junked, RULES, Metadata())
    assert (stored.width, stored.height) == (expected.width, expected.height)
    assert _pixels(stored) == _pixels(expected)


@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
@pytest.mark.parametrize("kind", KINDS)
def test_junk_where_the_end_marker_belongs_is_stored_whole_with_one(
    photo_pixels: Callable[..., Image.Image], kind: str, progressive: bool
) -> None:
    """The end marker missing and junk in its place (a camera's padding): libjpeg warns of
    the premature end, then, the marker added, of the junk before it."""
    whole = jpeg_of(photo_pixels(seed=32), kind, progressive=progressive)
    stored = process(whole[:-2] + JUNK["zeros"], RULES, Metadata())
    assert stored.jpeg.endswith(EOI)
    assert _pixels(stored) == _pixels(process(whole, RULES, Metadata()))


@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
@pytest.mark.parametrize("kind", KINDS)
def test_junk_between_header_segments_hides_no_cut_after_it(
    photo_pixels: Callable[..., Image.Image], kind: str, progressive: bool
) -> None:
    """Strict decoding stops at the junk, before any scan: the scans are decoded again with
    the junk left out, so a cut in them is still found, with or without an end marker."""
    whole = jpeg_of(photo_pixels(seed=33), kind, progressive=progressive)
    junked = _in_header(whole, JUNK["text"])
    _warns(junked, "extraneous bytes before marker 0xdb")
    assert _pixels(process(junked, RULES, Metadata())) == _pixels(process(whole, RULES, Metadata()))
    for cut in (_last_scan_cut(junked, 0.6), _last_scan_cut(junked, 0.6) + EOI):
        with pytest.raises(CorruptImage) as caught:
            process(cut, RULES, Metadata())
        assert caught.value.reason == "truncated", str(caught.value)


# Not Pillow's progressive CMYK: its last scan, two bytes of data, leaves every block as the
# scans before made it, and zeros read in place of its second byte do the same (nothing lost).
@pytest.mark.parametrize(
    ("kind", "progressive"),
    [*((kind, False) for kind in KINDS), ("colour", True), ("grey", True), ("rotated", True)],
)
def test_a_cut_padded_past_its_missing_data_is_truncated(
    photo_pixels: Callable[..., Image.Image], kind: str, progressive: bool
) -> None:
    """Zeros after a cut (a download written into a file made its full size first) decode as
    made-up blocks; with more zeros than the blocks take, libjpeg warns of the rest as junk
    before the end marker, as it does after a whole scan. The run of zeros reaching back past
    the bytes it skipped tells the two apart. With no end marker it is added first."""
    whole = jpeg_of(photo_pixels(seed=34), kind, progressive=progressive)
    cut = _last_scan_cut(whole, 0.5)
    padded = cut + bytes(100 * 1000 * 750 // 64)  # more than any block takes in zeros, for each
    _warns(padded + EOI, "extraneous bytes before marker 0xd9")
    for body in (padded + EOI, padded):
        with pytest.raises(CorruptImage) as caught:
            process(body, RULES, Metadata())
        assert caught.value.reason == "truncated", str(caught.value)


@pytest.mark.parametrize("kind", ["colour", "grey"])
def test_restart_markers_tell_junk_after_a_whole_scan_from_a_cut_one(
    photo_pixels: Callable[..., Image.Image], kind: str
) -> None:
    """Cut inside a restart interval, junk that fills its MCUs leaves libjpeg looking for the
    next restart marker, and it meets the junk's end and the end marker: the very warning of
    junk after a whole scan. Only the restart markers the scan carries tell it is short."""
    whole = jpeg_of(photo_pixels(seed=35), kind, restart_marker_blocks=4)
    junk = bytes(range(1, 61))
    assert _pixels(process(_before_end(whole, junk), RULES, Metadata())) == _pixels(
        process(whole, RULES, Metadata())
    )
    restarts = [at.start() for at in re.finditer(b"\xff[\xd0-\xd7]", whole)]
    cut = whole[: restarts[len(restarts) // 2] - 8] + junk + EOI
    _warns(cut, "extraneous bytes before marker 0xd9")
    with pytest.raises(CorruptImage) as caught:
        process(cut, RULES, Metadata())
    assert caught.value.reason == "truncated", str(caught.value)


@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
def test_junk_before_the_end_marker_hides_no_bad_huffman_code(
    photo_pixels: Callable[..., Image.Image], progressive: bool
) -> None:
    """A run of one-bits no Huffman table has a code for, in the last scan (near the end of a
    baseline one, where libjpeg-turbo decodes with its checks), is still corrupt."""
    whole = jpeg_of(photo_pixels(seed=36), "colour", progressive=progressive)
    assert _pixels(process(_before_end(whole, JUNK["text"]), RULES, Metadata())) == _pixels(
        process(whole, RULES, Metadata())
    )
    damaged = bytearray(whole)
    scan = whole.rindex(b"\xff\xda")
    at = len(whole) - 300 if not progressive else scan + (len(whole) - scan) // 2
    damaged[at : at + 16] = b"\xff\x00" * 8  # 64 one-bits, stuffed
    bad = _before_end(bytes(damaged), JUNK["text"])
    _warns(bad, "bad Huffman code")
    with pytest.raises(CorruptImage) as caught:
        process(bad, RULES, Metadata())
    assert caught.value.reason == "corrupt", str(caught.value)


def _without_jfif(data: bytes, transform: int) -> bytes:
    """A colour JPEG with Adobe's APP14 naming `transform` in place of its JFIF APP0."""
    assert data[2:4] == b"\xff\xe0"
    app0_end = 4 + struct.unpack(">H", data[4:6])[0]
    adobe = b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00" + bytes([transform])
    return data[:2] + adobe + data[app0_end:]


def _adobe_transform(data: bytes, transform: int) -> bytes:
    at = data.index(b"Adobe") + 11
    return data[:at] + bytes([transform]) + data[at + 1 :]


def _icc_chunk(number: int, count: int) -> bytes:
    payload = b"ICC_PROFILE\x00" + bytes([number, count]) + b"\x00" * 120
    return b"\xff\xe2" + struct.pack(">H", len(payload) + 2) + payload


def _header_warnings(colour: bytes, cmyk: bytes) -> dict[str, tuple[bytes, bytes, str]]:
    """A JPEG libjpeg warns of in its header, the file it reads it as, and the warning."""
    jfif_version = colour.index(b"JFIF\x00") + 5
    icc_at = colour.index(b"\xff\xdb")
    return {
        "jfif-version": (
            colour[:jfif_version] + b"\x03" + colour[jfif_version + 1 :],
            colour,
            "unknown JFIF revision number 3",
        ),
        "adobe-ycc": (_without_jfif(colour, 9), _without_jfif(colour, 1), "Adobe color transform"),
        "adobe-ycck": (
            _adobe_transform(cmyk, 9),
            _adobe_transform(cmyk, 2),
            "Adobe color transform",
        ),
        "icc-number-0": (
            colour[:icc_at] + _icc_chunk(0, 1) + colour[icc_at:],
            colour,
            "bad ICC marker",
        ),
        "icc-chunk-missing": (
            colour[:icc_at] + _icc_chunk(1, 2) + colour[icc_at:],
            colour,
            "bad ICC marker",
        ),
    }


@pytest.mark.parametrize(
    "case", ["jfif-version", "adobe-ycc", "adobe-ycck", "icc-number-0", "icc-chunk-missing"]
)
def test_a_header_libjpeg_warns_of_but_reads_past_leaves_the_pixels_it_reads(
    photo_pixels: Callable[..., Image.Image], case: str
) -> None:
    """Read as libjpeg reads it: JFIF 1, YCbCr or YCCK for a transform it does not know, no
    ICC profile for chunks it cannot piece together."""
    picture = photo_pixels(seed=37)
    warned, read_as, words = _header_warnings(jpeg_of(picture, "colour"), jpeg_of(picture, "cmyk"))[
        case
    ]
    _warns(warned, words)
    assert _pixels(process(warned, RULES, Metadata())) == _pixels(
        process(read_as, RULES, Metadata())
    )
