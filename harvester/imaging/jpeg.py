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
from collections.abc import Iterator

from harvester.imaging.errors import CorruptImage

__all__ = ["held_whole", "scans_complete", "with_metadata"]

_SOI = b"\xff\xd8"
_EOI = 0xD9
_SOS = 0xDA
_APP0, _APP1, _APP2, _APP14, _APP15 = 0xE0, 0xE1, 0xE2, 0xEE, 0xEF
_COM = 0xFE
# Start-of-frame markers (DHT, JPG and DAC share their range), and the progressive ones.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_PROGRESSIVE = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
_EVERY_COEFFICIENT = (1 << 64) - 1
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
    *_, (_eoi, start, _end) = _walk(data, pos)  # the last segment walked is the EOI marker
    return start + 2


def _walk(data: bytes, pos: int) -> Iterator[tuple[int, int, int]]:
    """(marker, start, end of its segment) from `pos` up to the EOI marker, the last; a
    scan's entropy-coded data is stepped over. CorruptImage if the data ends first."""
    while True:
        marker, end = _segment(data, pos)
        yield marker, pos, end
        if marker == _EOI:
            return
        if marker == _SOS:
            found = _MARKER_IN_SCAN.search(data, end)
            if found is None:
                raise CorruptImage("the JPEG data ends before its last scan", reason="truncated")
            end = found.start()
        pos = end


def held_whole(data: bytes) -> bool:
    """Whether libjpeg holds every coefficient of the picture at once to decode it, however
    far it scales the output, rather than a band at a time: a progressive JPEG, or a
    sequential one whose first scan codes fewer components than its frame has (libjpeg's
    has_multiple_scans). Told from the headers up to the first scan; headers it cannot walk
    count as held whole, the side a bomb check errs on."""
    frame = 0
    progressive = False
    try:
        for marker, start, _end in _walk(data, 2):
            if marker in _SOF:
                progressive = marker in _PROGRESSIVE
                frame = data[start + 9]
            elif marker == _SOS:
                return progressive or data[start + 4] < frame
    except (CorruptImage, IndexError):
        pass
    return True


def scans_complete(data: bytes) -> bool:
    """Whether the scans before the EOI marker give each component of the frame every
    coefficient at full precision. A progressive JPEG cut between two scans, or a sequential
    one coded a component a scan, is well-formed without the rest and decodes with no warning
    from libjpeg, blurred or blocky or without its colour: only the scans' headers tell."""
    if not data.startswith(_SOI):
        return False
    progressive = False
    missing: dict[int, int] = {}  # component id -> coefficients not yet at full precision
    try:
        for marker, start, end in _walk(data, 2):
            segment = data[start + 4 : end]
            if marker in _SOF:
                progressive = marker in _PROGRESSIVE
                missing = {segment[6 + 3 * i]: _EVERY_COEFFICIENT for i in range(segment[5])}
            elif marker == _SOS:
                _cover(missing, segment, progressive=progressive)
    except (CorruptImage, IndexError, ValueError):  # a header cut short or out of shape
        return False
    return bool(missing) and not any(missing.values())


def _cover(missing: dict[int, int], scan: bytes, *, progressive: bool) -> None:
    """Strike what one scan header (Ns, its components, Ss, Se, Ah/Al) brings to full
    precision: a sequential scan all of its components' coefficients, a progressive one its
    band Ss..Se when its successive approximation ends (Al = 0)."""
    count = scan[0]
    start, stop, approximation = scan[1 + 2 * count : 4 + 2 * count]
    if not progressive:
        done = _EVERY_COEFFICIENT
    elif approximation & 0x0F == 0:
        done = ((1 << (stop + 1)) - 1) & ~((1 << start) - 1)
    else:
        done = 0
    for component in scan[1 : 1 + 2 * count : 2]:
        if component in missing:
            missing[component] &= ~done
