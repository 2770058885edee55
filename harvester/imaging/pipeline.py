"""The resizer stage: image bytes in, a stored JPEG and its facts out.

Pure and picklable end to end, so the worker runs it in a process pool. The
order is chosen for cost: header checks refuse bad input before any pixel is
decoded, a JPEG that needs no new pixels keeps its coded data (only the frame
check decodes it, at 1/4 scale), the JPEG decoder does most of the downscaling,
frame detection reads only edge strips, and the final resize is skipped when the
decode already landed on the target size.
"""

from __future__ import annotations

import hashlib
import math

from harvester.imaging.codec import Pixels, closed_jpeg, decode_scaled, encode
from harvester.imaging.cv import opencv
from harvester.imaging.decode import (
    check_full_decode,
    check_limits,
    check_scans,
    decode_upright,
    format_name,
    is_plain_jpeg,
    open_header,
    upright_size,
)
from harvester.imaging.errors import CorruptImage, ImagingError, TooSmall
from harvester.imaging.exif import build_exif
from harvester.imaging.frame import Frame, detect_frame
from harvester.imaging.jpeg import mended, with_metadata
from harvester.imaging.model import Metadata, Processed, SizeRules
from harvester.imaging.phash import hash_hex, perceptual_hash

__all__ = ["fit", "opencv", "probe", "process"]

NO_FRAME: Frame = (0, 0, 0, 0)
# The frame check of a kept JPEG decodes at 1/4: as reliable as full size (measured on
# framed photos), where 1/8 misses thin bands; unchecked, 1/8 only validates the data.
_CHECK_SCALE, _VALIDATE_SCALE = 4, 8


def probe(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) from the header alone, upright; no pixel decode."""
    im = open_header(data)
    try:
        w, h = upright_size(im)
        return (format_name(im), w, h)
    finally:
        im.close()


def fit(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Size with the longer side at most `max_side`, aspect kept, never upscaled."""
    longest = max(width, height)
    if longest <= max_side:
        return (width, height)
    scale = max_side / longest
    return (max(1, round(width * scale)), max(1, round(height * scale)))


def process(data: bytes, rules: SizeRules, meta: Metadata) -> Processed:
    """Decode, strip the frame, resize and encode with EXIF; raise ImagingError if not.
    A JPEG refused is tried again, as libjpeg reads it, with what it warns of in its headers
    but reads past put right (`jpeg.mended`: junk between segments, an unknown JFIF version
    or Adobe transform, a broken ICC profile), every scan still checked; one missing only its
    end marker is taken whole, and stored with one. A clean file is read once."""
    try:
        return _process(data, rules, meta)
    except CorruptImage as exc:
        error = exc
    repaired = mended(data)
    if repaired is not None:
        try:
            return _process(repaired, rules, meta)
        except CorruptImage as exc:  # its refusal, now that nothing hides it
            data, error = repaired, exc
    closed = closed_jpeg(data) if error.reason == "truncated" else None
    if closed is None:
        raise error
    return _process(closed, rules, meta)


def _process(data: bytes, rules: SizeRules, meta: Metadata) -> Processed:
    # Not closed: the decoded picture may be this very object, and it only holds
    # an in-memory buffer.
    im = open_header(data)
    source_format = format_name(im)
    src_w, src_h = upright_size(im)
    check_limits((src_w, src_h), max_pixels=rules.max_pixels, min_side=rules.min_side)
    check_full_decode(im, data, (src_w, src_h), source_format, max_bytes=rules.max_decode_bytes)
    check_scans(im, data)
    plain = is_plain_jpeg(im)
    if fit(src_w, src_h, rules.max_side) == (src_w, src_h) and plain:
        scale = _CHECK_SCALE if rules.strip_frames else _VALIDATE_SCALE
        check = (math.ceil(src_w / scale), math.ceil(src_h / scale))
        small = decode_scaled(data, (src_w, src_h), check)
        if not rules.strip_frames or detect_frame(small) == NO_FRAME:
            jpeg = with_metadata(data, build_exif(meta))
            shape = perceptual_hash(small)  # the small check decode shows the whole picture
            return _processed(jpeg, (src_w, src_h), (src_w, src_h), source_format, NO_FRAME, shape)
    picture = decode_upright(im, data, fit(src_w, src_h, rules.max_side))
    frame = detect_frame(picture) if rules.strip_frames else NO_FRAME
    frame_src = _in_source(frame, _size(picture), (src_w, src_h))
    top, right, bottom, left = frame_src
    inner = (src_w - left - right, src_h - top - bottom)
    if min(inner) < rules.min_side:  # judged again on the picture the frame leaves
        raise TooSmall(f"{inner[0]}x{inner[1]} inside its frame is below {rules.min_side} px")
    target = fit(*inner, rules.max_side)
    size = _size(picture)
    if frame != NO_FRAME and size != (src_w, src_h):
        # Cut from a DCT-scaled decode, the frame may leave less than the target: then
        # decode at the scale that leaves enough inside it.
        cut = (size[0] - frame[1] - frame[3], size[1] - frame[0] - frame[2])
        if cut[0] < target[0] or cut[1] < target[1]:
            needed = (
                math.ceil(src_w * target[0] / inner[0]),
                math.ceil(src_h * target[1] / inner[1]),
            )
            picture = decode_upright(im, data, needed)
            frame = _in_picture(frame_src, _size(picture), (src_w, src_h))
    out = _resize(_crop(picture, frame), target)
    jpeg = with_metadata(encode(out, rules.quality), build_exif(meta))
    shape = perceptual_hash(out)
    return _processed(jpeg, _size(out), (src_w, src_h), source_format, frame_src, shape)


def _size(pixels: Pixels) -> tuple[int, int]:
    return (pixels.shape[1], pixels.shape[0])


def _processed(
    jpeg: bytes,
    size: tuple[int, int],
    source: tuple[int, int],
    fmt: str,
    frame: Frame,
    phash: int,
) -> Processed:
    return Processed(
        jpeg=jpeg,
        width=size[0],
        height=size[1],
        source_width=source[0],
        source_height=source[1],
        source_format=fmt,
        frame=frame,
        sha256=hashlib.sha256(jpeg).hexdigest(),
        phash=hash_hex(phash),
    )


def _in_source(frame: Frame, size: tuple[int, int], source: tuple[int, int]) -> Frame:
    """Frame widths measured on a picture of `size`, in source pixels."""
    if frame == NO_FRAME:
        return frame
    top, right, bottom, left = frame
    sx, sy = source[0] / size[0], source[1] / size[1]
    return (round(top * sy), round(right * sx), round(bottom * sy), round(left * sx))


def _in_picture(frame: Frame, size: tuple[int, int], source: tuple[int, int]) -> Frame:
    """Frame widths in source pixels, on a picture of `size`."""
    top, right, bottom, left = frame
    sx, sy = size[0] / source[0], size[1] / source[1]
    return (round(top * sy), round(right * sx), round(bottom * sy), round(left * sx))


def _crop(picture: Pixels, frame: Frame) -> Pixels:
    """The picture inside the frame: a view, no copy."""
    if frame == NO_FRAME:
        return picture
    top, right, bottom, left = frame
    h, w = picture.shape[:2]
    return picture[top : h - bottom, left : w - right]


def _resize(picture: Pixels, target: tuple[int, int]) -> Pixels:
    """Down to the target; never above what was decoded.

    After DCT scaling the factor left is below 2, where bilinear sampling is as close to a
    careful Lanczos reference as Pillow's filters (measured on photos: within 0.1 dB) at a
    fraction of the cost; larger factors (PNG, WebP) average areas instead.
    """
    width, height = _size(picture)
    if target == (width, height) or target[0] > width or target[1] > height:
        return picture
    cv2 = opencv()
    factor = width / target[0]
    interpolation = cv2.INTER_LINEAR if factor < 2 else cv2.INTER_AREA
    try:
        pixels: Pixels = cv2.resize(picture, target, interpolation=interpolation)
    except (MemoryError, cv2.error) as exc:
        raise ImagingError(
            "out of memory while resizing", reason="out_of_memory", permanent=False
        ) from exc
    return pixels
