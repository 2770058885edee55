"""libjpeg-turbo straight to and from numpy (simplejpeg), for every JPEG, its warnings as
errors but one that leaves the picture whole.

Pillow's JPEG decoder ignores libjpeg's warnings: a picture whose scan data was cut short and
an end marker added (a cut transfer "closed", a broken upload) decodes grey past the cut with
no error. simplejpeg is the same library without Pillow's costs around it: Pillow decodes
through a suspending reader into 4-byte pixels and copies again to reach numpy; simplejpeg
decodes in one call into a 3-byte array (bit-identical pixels, measured on the bench corpus)
and encodes from one. A progressive 2048x1536 at 1/2 scale took 37 ms instead of 44.5,
a full 1600x1200 8.2 instead of 10.9, a 1024x768 encode 2.8 instead of 3.2 (one core,
on the mixed bench corpus).

Strict decoding stops at libjpeg's first warning. Of its warnings (jerror.h's JWRN_*), those
that mean pixels lost or made up stay refusals: data cut short (`truncated`), a bad Huffman or
arithmetic code, a restart marker out of place, an inconsistent progression (`corrupt`). Those
that leave every pixel are read past: the ones of a header (junk between two segments, an
unknown JFIF version or Adobe transform, an ICC profile in bad chunks) by `jpeg.mended`, which
the pipeline tries next; junk between the last scan and the end marker here, the picture
decoded again without stopping. That warning comes only after every scan has been read, so
none before it went unseen.
"""

from __future__ import annotations

import math
import re

import numpy as np
import numpy.typing as npt
import simplejpeg
from PIL import Image

from harvester.imaging.cv import opencv
from harvester.imaging.errors import CorruptImage, ImagingError
from harvester.imaging.jpeg import cut_before_end, scans_complete

__all__ = ["Pixels", "closed_jpeg", "decode_scaled", "encode"]

EOI = b"\xff\xd9"  # the end-of-image marker
# simplejpeg's colour space for a JPEG's own (its header's name), to decode without converting.
_NATIVE = {"Gray": "GRAY", "CMYK": "CMYK", "YCCK": "CMYK"}

# Pillow's mode for a JPEG (from its component count) -> the colour space to decode it in.
_MODES = {"RGB": "RGB", "L": "GRAY", "CMYK": "CMYK"}
# libjpeg's words for data that ends early: no end marker ("Premature end of JPEG file"), a
# marker such as an added FFD9 inside a scan ("premature end of data segment"), or the end
# marker where a restart marker was due.
_CUT = re.compile(r"premature end|found marker 0xd9 instead of RST", re.IGNORECASE)
# libjpeg's words for bytes it skipped before the end marker, and how many it counted.
_SKIPPED_BEFORE_END = re.compile(r"(\d+) extraneous bytes before marker 0xd9", re.IGNORECASE)

Pixels = npt.NDArray[np.uint8]  # height x width x RGB

# DCT scaling at 1/2, 1/4, 1/8 only: libjpeg-turbo's other factors (3/4, 5/8, ...) run its
# plain-C IDCTs and cost more than a full decode (measured: 6/8 of a 1600x1200, 11.1 ms
# against 8.2 ms in full).
_SCALES = (8, 4, 2, 1)


def decode_scaled(
    data: bytes, size: tuple[int, int], at_least: tuple[int, int], mode: str = "RGB"
) -> Pixels:
    """The JPEG's RGB pixels at 1/8, 1/4, 1/2 or full scale, chosen as Pillow's draft chooses
    (the largest factor that divides both sides into at least `at_least`), as stored (no
    EXIF turn). `mode` is Pillow's for it: grey and CMYK come out as Pillow converts them.
    A scan cut short is refused however the file ends: libjpeg warns of it (a picture cut
    between two scans decodes with no warning: `decode.check_scans` tells it, once a file)."""
    w, h = size
    fits = min(w // max(1, at_least[0]), h // max(1, at_least[1]))
    scale = next((s for s in _SCALES if fits >= s), 1)  # asked for more than it has: in full
    scaled = (math.ceil(w / scale), math.ceil(h / scale))
    try:
        # The exact size of a 1/N decode makes simplejpeg pick that factor and no other.
        pixels = _decoded(data, _MODES[mode], scaled)
    except MemoryError as exc:
        raise ImagingError(
            "out of memory while decoding", reason="out_of_memory", permanent=False
        ) from exc
    return _as_rgb(pixels, mode)


def _decoded(data: bytes, colorspace: str, size: tuple[int, int]) -> Pixels:
    """libjpeg's pixels of `data` at least `size`, its warnings as errors (CorruptImage) but
    for bytes skipped before the end marker after a whole last scan (junk some phones and
    editors leave there): decoded again, not stopping at it. A clean file is decoded once."""
    width, height = size
    try:
        pixels: Pixels = simplejpeg.decode_jpeg(
            data, colorspace=colorspace, min_width=width, min_height=height
        )
        return pixels
    except ValueError as exc:
        skipped = _SKIPPED_BEFORE_END.search(str(exc))
        if skipped is None:
            reason = "truncated" if _CUT.search(str(exc)) else "corrupt"
            raise CorruptImage(f"the image data cannot be decoded: {exc}", reason=reason) from exc
        if cut_before_end(data, int(skipped[1])):
            raise CorruptImage(
                f"the image data ends short of its picture, padded up to its end marker: {exc}",
                reason="truncated",
            ) from exc
    # Warned of only once every scan was read: the first warning, so no other went unseen.
    whole: Pixels = simplejpeg.decode_jpeg(
        data, colorspace=colorspace, min_width=width, min_height=height, strict=False
    )
    return whole


def _as_rgb(pixels: Pixels, mode: str) -> Pixels:
    """Grey and CMYK pixels in RGB, the very values Pillow's convert gives (CMYK read with
    Adobe's inverted polarity, as Pillow reads every CMYK JPEG)."""
    if mode == "L":
        cv2 = opencv()
        rgb: Pixels = cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB)
        return rgb
    if mode == "CMYK":
        cmyk = Image.frombuffer("CMYK", (pixels.shape[1], pixels.shape[0]), pixels, "raw", "CMYK;I")
        return np.asarray(cmyk.convert("RGB"))
    return pixels


def closed_jpeg(data: bytes) -> bytes | None:
    """The JPEG with its end-of-image marker added when that marker alone is missing, as
    some cameras and uploaders leave it (libjpeg then warns of a premature end, as it does
    for a file cut short); None when more is missing. Told by its scans' headers, which must
    bring every coefficient to full precision (a progressive JPEG cut between two scans
    decodes with no warning), then by decoding it, marker added, at the smallest scale with
    libjpeg's warnings as errors as `decode_scaled` takes them: a scan cut short still warns."""
    if data.endswith(EOI):
        return None
    closed = data + EOI
    if not scans_complete(closed):  # a JPEG's SOI first, and every coefficient's scans
        return None
    try:
        colorspace = _NATIVE.get(simplejpeg.decode_jpeg_header(closed)[2], "RGB")
        _decoded(closed, colorspace, (1, 1))
    except (ValueError, CorruptImage):
        return None
    return closed


def encode(pixels: Pixels, quality: int) -> bytes:
    """Baseline JPEG, 4:2:0 (Pillow's default), standard Huffman tables."""
    try:
        return bytes(
            simplejpeg.encode_jpeg(
                np.ascontiguousarray(pixels),
                quality=quality,
                colorspace="RGB",
                colorsubsampling="420",
            )
        )
    except (ValueError, MemoryError) as exc:
        raise ImagingError(f"the JPEG could not be encoded: {exc}", reason="encode_failed") from exc
