"""A JPEG's metadata segments replaced while its coded picture stays byte for byte.

An image that needs no new pixels (small enough, upright, no frame) is stored as its
source: the same quantisation and Huffman tables, frame header and entropy-coded scans,
so it decodes to exactly the source's pixels. Only metadata changes: our EXIF goes in
APP1; the JFIF header, an ICC profile and Adobe's colour-transform flag are kept (they
say how the pixels are to be read); other cameras' and editors' metadata is dropped.

The same walk of its markers tells what libjpeg's warnings alone cannot: whether every scan
is there (`scans_complete`), whether the bytes it skipped before the end marker follow a
whole last scan (`cut_before_end`), and how to put right what it warns of in a header but
reads past (`mended`).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator

from harvester.imaging.errors import CorruptImage

__all__ = ["cut_before_end", "held_whole", "mended", "scans_complete", "with_metadata"]

_SOI = b"\xff\xd8"
_EOI = 0xD9
_SOS = 0xDA
_DRI = 0xDD
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
_RESTART = re.compile(rb"\xff[\xd0-\xd7]")
# Where libjpeg finds the next marker between two segments: 0xFF (and any fill), then a code
# that is not 0x00; whatever comes before it, it skips with a warning.
_NEXT_MARKER = re.compile(rb"\xff+[^\x00\xff]")
# libjpeg's bit buffer reads up to 8 bytes past the last code it decodes and does not count
# them as skipped; a scan's own last bytes may equal its padding's by chance.
_UNCOUNTED = 16
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


def cut_before_end(data: bytes, skipped: int) -> bool:
    """Whether the `skipped` bytes libjpeg passed over before the end marker ("extraneous
    bytes before marker 0xd9") may be the padding of a last scan cut short rather than junk
    after a whole one: libjpeg names both alike. A cut scan padded is told by its restart
    markers, fewer than its MCUs call for (libjpeg looked for the next one and found the
    padding, then the end), or by a run of one byte value (zeros, most often) reaching
    further back than libjpeg skipped: the rest of the run was read as the scan's missing
    data. A file whose markers cannot be walked counts as cut."""
    try:
        segments = list(_walk(data, 2))
        last = max(i for i, (marker, _start, _end) in enumerate(segments) if marker == _SOS)
        due = _restarts_due(data, segments[: last + 1])
    except (CorruptImage, LookupError, ValueError, ZeroDivisionError, struct.error):
        return True  # headers libjpeg would not have decoded to the end
    begin, stop = segments[last][2], segments[last + 1][1]
    if len(_RESTART.findall(data, begin, stop)) != due:
        return True
    while stop > begin and data[stop - 1] == 0xFF:  # fill bytes before the end marker
        stop -= 1
    reach = skipped + _UNCOUNTED  # as far back as junk after a whole scan can run
    if stop - begin <= reach:
        return False
    run = data[stop - reach - 1 : stop]  # one byte further back
    return run.count(run[-1:]) == len(run)


def _restarts_due(data: bytes, segments: list[tuple[int, int, int]]) -> int:
    """How many restart markers the scan whose header is the last of `segments` carries when
    whole: one between each two restart intervals of its MCUs, counted as libjpeg counts them
    (a component's blocks in a scan of one component, else the frame's MCUs)."""
    interval, frame = 0, b""
    for marker, start, end in segments:
        if marker in _SOF:
            frame = data[start + 4 : end]
        elif marker == _DRI:
            interval = int.from_bytes(data[start + 4 : start + 6], "big")
    if not interval:
        return 0
    scan = data[segments[-1][1] + 4 : segments[-1][2]]
    height, width = struct.unpack_from(">HH", frame, 1)
    sampling = {frame[6 + 3 * i]: frame[7 + 3 * i] for i in range(frame[5])}
    h_max = 8 * max(factors >> 4 for factors in sampling.values())
    v_max = 8 * max(factors & 0x0F for factors in sampling.values())
    if scan[0] == 1:  # one component: its own blocks
        factors = sampling[scan[1]]
        across, down = _ceil(width * (factors >> 4), h_max), _ceil(height * (factors & 0x0F), v_max)
    else:
        across, down = _ceil(width, h_max), _ceil(height, v_max)
    if across * down <= 0:
        raise ValueError("a frame with no MCUs")
    return _ceil(across * down, interval) - 1


def _ceil(value: int, divisor: int) -> int:
    return -(-value // divisor)


def mended(data: bytes) -> bytes | None:
    """The JPEG with what libjpeg warns of in its headers, yet reads past, put right so that
    it reads the same with no warning; None when it has none of it, or its markers cannot be
    walked. Bytes between two segments are left out (libjpeg skips them to the next marker);
    a JFIF major version other than 1 becomes 1 (libjpeg reads on as if it were); an Adobe
    colour transform libjpeg does not know becomes the one it assumes; an ICC profile it
    cannot piece together (chunks missing, repeated or miscounted) is left out (it reads
    none). Scans stay byte for byte: junk after a scan's data cannot be told from it."""
    if not data.startswith(_SOI):
        return None
    try:
        parts, skipped = _parts(data)
        changed = _mend_headers(parts)
    except (CorruptImage, IndexError):
        return None
    return b"".join(parts) if skipped or changed else None


def _parts(data: bytes) -> tuple[list[bytes | bytearray], bool]:
    """SOI, every segment (headers as bytearrays, to be mended; a scan with its data) and the
    EOI marker, with whatever libjpeg skips between them left out, and whether any was. A
    last scan that runs to the end of the data ends the parts (its end marker missing, which
    `codec.closed_jpeg` judges)."""
    parts: list[bytes | bytearray] = [_SOI]
    skipped = False
    pos = 2
    while True:
        found = _NEXT_MARKER.search(data, pos)
        if found is None:
            raise CorruptImage("the JPEG data ends inside its header", reason="truncated")
        start = found.end() - 2  # fill bytes before a marker are left out too: no warning
        skipped |= found.start() != pos
        marker, end = _segment(data, start)
        if marker == _SOI[1]:  # libjpeg stops at a second SOI: nothing to mend
            raise CorruptImage("a second start-of-image marker", reason="corrupt")
        if marker == _EOI:
            parts.append(data[start:end])
            return parts, skipped
        if marker != _SOS:
            parts.append(bytearray(data[start:end]))
        elif (scan_end := _MARKER_IN_SCAN.search(data, end)) is None:
            parts.append(data[start:])
            return parts, skipped
        else:
            end = scan_end.start()
            parts.append(data[start:end])
        pos = end


def _mend_headers(parts: list[bytes | bytearray]) -> bool:
    """Put right, in place, the JFIF versions, Adobe transforms and ICC chunks libjpeg warns
    of; whether any was."""
    first_scan = next((i for i, part in enumerate(parts) if part[1] == _SOS), len(parts))
    changed, components, jfif = False, 0, False
    adobe: list[bytearray] = []
    icc: list[int] = []
    for index, part in enumerate(parts):
        if not isinstance(part, bytearray):
            continue
        marker, header = part[1], index < first_scan  # colour and ICC: settled at the first scan
        if marker in _SOF:
            components = part[9]
        elif marker == _APP0 and part[4:9] == b"JFIF\x00" and len(part) >= 18:
            jfif |= header
            if part[9] != 1:  # the major version
                part[9], changed = 1, True
        elif marker == _APP14 and part[4:9] == b"Adobe" and len(part) >= 16 and header:
            adobe.append(part)
        elif marker == _APP2 and part[4:16] == b"ICC_PROFILE\x00" and len(part) >= 18 and header:
            icc.append(index)
    changed |= _mend_adobe(adobe, components, jfif=jfif)
    if icc and not _icc_whole([parts[index] for index in icc]):
        for index in icc:
            parts[index] = b""
        changed = True
    return changed


def _mend_adobe(segments: list[bytearray], components: int, *, jfif: bool) -> bool:
    """libjpeg reads Adobe's transform for three components with no JFIF header (0 RGB, 1
    YCbCr) and for four (0 CMYK, 2 YCCK); any other value it warns of and takes as YCbCr or
    YCCK. That value is written in its place; whether one was."""
    if components == 3 and not jfif:
        known, assumed = (0, 1), 1
    elif components == 4:
        known, assumed = (0, 2), 2
    else:
        return False
    changed = False
    for segment in segments:
        if segment[15] not in known:  # the transform, Adobe's twelfth byte
            segment[15], changed = assumed, True
    return changed


def _icc_whole(chunks: list[bytes | bytearray]) -> bool:
    """Whether ICC_PROFILE chunks piece together as libjpeg pieces them: each names the same
    count, their numbers run 1..count once each, and they carry some profile."""
    count = chunks[0][17]
    numbers = sorted(chunk[16] for chunk in chunks)
    return (
        all(chunk[17] == count for chunk in chunks)
        and numbers == list(range(1, count + 1))
        and sum(len(chunk) - 18 for chunk in chunks) > 0
    )
