"""A JPEG's metadata segments replaced while its coded picture stays byte for byte.

An image that needs no new pixels (small enough, upright, no frame) is stored as its
source: the same quantisation and Huffman tables, frame header and entropy-coded scans,
so it decodes to exactly the source's pixels. Only metadata changes: our EXIF goes in
APP1; the JFIF header, an ICC profile and Adobe's colour-transform flag are kept (they
say how the pixels are to be read); other cameras' and editors' metadata is dropped.
"""

from __future__ import annotations

import re
import struct

from harvester.imaging.errors import CorruptImage

__all__ = ["with_metadata"]

_SOI = b"\xff\xd8"
_EOI = 0xD9
_SOS = 0xDA
_APP0, _APP1, _APP2, _APP14, _APP15 = 0xE0, 0xE1, 0xE2, 0xEE, 0xEF
_COM = 0xFE
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM and RSTn carry no length
# In entropy-coded data a 0xFF byte is followed by 0x00 (stuffing), RSTn or more 0xFF fill;
# anything else is a marker (the next scan's tables, or the end of the image).
_MARKER_IN_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_LENGTH = struct.Struct(">H")


def with_metadata(data: bytes, exif: bytes) -> bytes:
    """`data` with APP1 = `exif` (b"Exif\\0\\0..."), its coded picture untouched.

    Anything after the end-of-image marker (a camera's second picture, junk) is left out.
    """
    if not data.startswith(_SOI):
        raise CorruptImage("not a JPEG stream", reason="bad_header")
    head: list[bytes] = []
    kept: list[bytes] = []
    pos = 2
    while True:
        marker, end = _segment(data, pos)
        segment = data[pos:end]
        if marker == _SOS:
            break
        if marker == _APP0 and segment[4:9] == b"JFIF\x00" and not head:
            head.append(segment)
        elif (
            (marker == _APP2 and segment[4:16] == b"ICC_PROFILE\x00")
            or (marker == _APP14 and segment[4:9] == b"Adobe")
            or not (_APP0 <= marker <= _APP15 or marker == _COM)
        ):
            kept.append(segment)
        pos = end
    picture_end = _end_of_image(data, pos)
    app1 = b"\xff\xe1" + _LENGTH.pack(len(exif) + 2) + exif
    return b"".join([_SOI, *head, app1, *kept, data[pos:picture_end]])


def _segment(data: bytes, pos: int) -> tuple[int, int]:
    """The marker at `pos` and where its segment ends."""
    while data[pos : pos + 2] == b"\xff\xff":  # fill bytes before a marker
        pos += 1
    if pos + 2 > len(data) or data[pos] != 0xFF:
        raise CorruptImage("the JPEG data ends inside its header", reason="truncated")
    marker = data[pos + 1]
    if marker in _STANDALONE or marker == _EOI:
        return marker, pos + 2
    if pos + 4 > len(data):
        raise CorruptImage("the JPEG data ends inside its header", reason="truncated")
    (length,) = _LENGTH.unpack_from(data, pos + 2)
    if length < 2 or pos + 2 + length > len(data):
        raise CorruptImage("a JPEG segment runs past the end", reason="truncated")
    return marker, pos + 2 + length


def _end_of_image(data: bytes, pos: int) -> int:
    """Just past the EOI marker, walking scans (and the tables between them) from `pos`."""
    while True:
        marker, end = _segment(data, pos)
        if marker == _EOI:
            return pos + 2
        if marker != _SOS:
            pos = end
            continue
        found = _MARKER_IN_SCAN.search(data, end)
        if found is None:
            raise CorruptImage("the JPEG data ends before its last scan", reason="truncated")
        pos = found.start()
