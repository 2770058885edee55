"""Bytes to an upright RGB picture, with every limit checked before pixels exist.

Only the JPEG, PNG and WebP decoders are ever reached. Dimensions come from
the header; the pixel limit and the minimum side are enforced on them, so a
bomb or a thumbnail costs a header parse, not a decode. JPEGs are decoded
straight at 1/2, 1/4 or 1/8 scale (DCT-domain scaling) when that still leaves
at least the target size: decoding dominates the cost of the whole pipeline.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import numpy as np
from PIL import Image, ImageFile, JpegImagePlugin, UnidentifiedImageError

from harvester.imaging.codec import Pixels, decode_scaled
from harvester.imaging.cv import opencv
from harvester.imaging.errors import (
    CorruptImage,
    DecompressionBomb,
    ImagingError,
    TooSmall,
    UnsupportedFormat,
)
from harvester.imaging.jpeg import held_whole, scans_complete

__all__ = [
    "DECODE_ERRORS",
    "check_full_decode",
    "check_limits",
    "check_scans",
    "decode_upright",
    "format_name",
    "is_plain_jpeg",
    "open_header",
    "upright_size",
]

_DECODERS = ["JPEG", "PNG", "WEBP"]

# Errors Pillow's plugins raise on malformed input; anything else is a bug.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)

_OTHER_FORMATS: tuple[tuple[bytes, str], ...] = (
    (b"GIF8", "gif"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"BM", "bmp"),
    (b"\x00\x00\x01\x00", "ico"),
    (b"%PDF", "pdf"),
)
# An error page may open with a comment before its doctype, as generated pages often do.
_MARKUP = (b"<!doctype", b"<html", b"<?xml", b"<head", b"<body", b"<svg", b"<!--")

_ORIENTATION_TAG = 0x0112
# What a viewer applies to stored pixels to show them upright: whether to transpose them, then
# OpenCV's flip (1 left-right, 0 top-bottom, -1 both; None: no flip). A quarter turn so is
# one of its transposes plus a flip.
_UPRIGHT: dict[int, tuple[bool, int | None]] = {
    2: (False, 1),
    3: (False, -1),
    4: (False, 0),
    5: (True, None),
    6: (True, 1),
    7: (True, -1),
    8: (True, 0),
}

WHITE = (255, 255, 255)


def open_header(data: bytes) -> ImageFile.ImageFile:
    """Parse the header only; raise the ImagingError that explains a refusal."""
    if not data:
        raise CorruptImage("the body is empty", reason="empty")
    _refuse_non_images(data)
    try:
        with warnings.catch_warnings():
            # Our own pixel limit is applied by the caller; Pillow's warning is noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=_DECODERS)
    except Image.DecompressionBombError as exc:
        raise DecompressionBomb(f"header declares too many pixels: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise CorruptImage("the image header cannot be read", reason="bad_header") from exc
    except DECODE_ERRORS as exc:
        raise CorruptImage(f"the image header is damaged: {exc}", reason="bad_header") from exc
    if not isinstance(im, ImageFile.ImageFile):  # pragma: no cover - Pillow contract
        raise UnsupportedFormat("unexpected image object")
    return im


def _refuse_non_images(data: bytes) -> None:
    head = data[:16]
    if head.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")) or (
        head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    ):
        return
    text = data[:256].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(_MARKUP):
        raise UnsupportedFormat("the body is HTML/XML, not an image", reason="html")
    for magic, name in _OTHER_FORMATS:
        if head.startswith(magic):
            raise UnsupportedFormat(f"{name} images are not accepted")
    raise UnsupportedFormat("the body is not a recognised image", reason="unknown_format")


def format_name(im: Image.Image) -> str:
    """Lower-case format; camera MPO files are JPEGs with extra frames."""
    return "jpeg" if isinstance(im, JpegImagePlugin.JpegImageFile) else str(im.format).lower()


def upright_size(im: Image.Image) -> tuple[int, int]:
    """Width and height as displayed (EXIF orientation 5-8 swaps them)."""
    w, h = im.size
    return (h, w) if _orientation(im) in (5, 6, 7, 8) else (w, h)


def is_plain_jpeg(im: Image.Image) -> bool:
    """A colour JPEG stored upright: its coded data can be kept as it is."""
    return (
        isinstance(im, JpegImagePlugin.JpegImageFile) and im.mode == "RGB" and _orientation(im) == 1
    )


def check_limits(size: tuple[int, int], *, max_pixels: int, min_side: int) -> None:
    """Refuse bombs and thumbnails from the declared size alone."""
    w, h = size
    if w * h > max_pixels:
        raise DecompressionBomb(f"{w}x{h} is {w * h} pixels, over the limit of {max_pixels}")
    if min(w, h) < min_side:
        raise TooSmall(f"{w}x{h} is below the minimum side of {min_side} px")


# A full decode's peak memory per source pixel, through the whole pipeline (decode, alpha
# onto white, frame check, resize, encode), measured on the largest pictures accepted
# (tests/unit/imaging/test_full_decode_memory.py), with a margin.
_FULL_DECODE_BYTES_PER_PIXEL = {
    ("png", False): 13,
    ("png", True): 16,
    ("webp", False): 20,
    ("webp", True): 25,
}
_OTHER_BYTES_PER_PIXEL = 25


def full_decode_pixels(fmt: str, alpha: bool, max_bytes: int) -> int:
    """The most pixels a picture of this format may have when decoded at full size."""
    cost = _FULL_DECODE_BYTES_PER_PIXEL.get((fmt, alpha), _OTHER_BYTES_PER_PIXEL)
    return max_bytes // cost


def has_alpha(im: Image.Image) -> bool:
    """Whether the picture carries transparency (composited onto white, an extra copy)."""
    return im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info


def whole_coefficient_bytes(im: Image.Image, data: bytes) -> int:
    """What libjpeg holds at once to decode a JPEG it decodes whole (progressive, or coded a
    component a scan: `jpeg.held_whole`), however far it scales the output: every DCT
    coefficient of the picture (a 64-coefficient block of 2-byte values per 8x8 samples of
    each component, padded to whole MCUs); 0 for any other picture, decoded a band at a time."""
    if not isinstance(im, JpegImagePlugin.JpegImageFile) or not held_whole(data):
        return 0
    layers = im.layer  # (component id, horizontal and vertical sampling, table) from SOF
    if not layers:
        return 0
    w, h = im.size  # as stored: the coefficients do not care about EXIF orientation
    h_max = max(max(1, layer[1]) for layer in layers)
    v_max = max(max(1, layer[2]) for layer in layers)
    total = 0
    for _id, h_samp, v_samp, _table in layers:
        h_samp, v_samp = max(1, h_samp), max(1, v_samp)
        across = _round_up(-(-w * h_samp // (h_max * 8)), h_samp)
        down = _round_up(-(-h * v_samp // (v_max * 8)), v_samp)
        total += across * down * 64 * 2
    return total


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def check_full_decode(
    im: Image.Image, data: bytes, size: tuple[int, int], fmt: str, *, max_bytes: int
) -> None:
    """Refuse a picture that must be decoded at full size (no DCT scaling: PNG, WebP), or a
    JPEG whose coefficients are held whole (progressive, or coded a component a scan), when
    that would take more memory than a worker may spend on one image."""
    w, h = size
    coefficients = whole_coefficient_bytes(im, data)
    if coefficients > max_bytes:
        kind = "progressive" if im.info.get("progressive") else "multi-scan"
        raise DecompressionBomb(
            f"{w}x{h} {kind} JPEG holds {coefficients // 2**20} MB of coefficients while "
            f"decoding at any scale, over the {max_bytes // 2**20} MB an image may take"
        )
    limit = full_decode_pixels(fmt, has_alpha(im), max_bytes)
    if fmt != "jpeg" and w * h > limit:
        raise DecompressionBomb(
            f"{w}x{h} {fmt.upper()} is {w * h} pixels decoded at full size, over the limit of "
            f"{limit} for formats without scaled decoding ({max_bytes // 2**20} MB an image)"
        )


def check_scans(im: Image.Image, data: bytes) -> None:
    """Refuse a multi-scan JPEG cut between two scans, its end marker added: libjpeg decodes
    the scans before the cut with no warning, blurred or blocky, and only the scans' headers
    tell that coefficients were never sent. Once a file, not once a decode."""
    if (
        isinstance(im, JpegImagePlugin.JpegImageFile)
        and held_whole(data)
        and not scans_complete(data)
    ):
        raise CorruptImage("the JPEG's scans end before its picture is whole", reason="truncated")


def decode_upright(im: ImageFile.ImageFile, data: bytes, at_least: tuple[int, int]) -> Pixels:
    """Upright RGB pixels of `data` (`im` its header): a JPEG straight from libjpeg, warnings
    as errors and DCT-scaled while >= `at_least` (`codec.decode_scaled`: Pillow would store a
    cut one filled grey), anything else (PNG, WebP) through Pillow."""
    orientation = _orientation(im)
    if isinstance(im, JpegImagePlugin.JpegImageFile):
        w, h = at_least
        stored = (h, w) if orientation in (5, 6, 7, 8) else (w, h)
        return _upright(decode_scaled(data, im.size, stored, im.mode), orientation)
    try:
        im.load()
    except MemoryError as exc:
        raise ImagingError(
            "out of memory while decoding", reason="out_of_memory", permanent=False
        ) from exc
    except DECODE_ERRORS as exc:
        reason = "truncated" if "truncated" in str(exc) else "corrupt"
        raise CorruptImage(f"the image data cannot be decoded: {exc}", reason=reason) from exc
    return _upright(np.asarray(_to_rgb(im)), orientation)


def _upright(pixels: Pixels, orientation: int) -> Pixels:
    """The pixels turned as the EXIF orientation says, by OpenCV: a quarter turn of a
    1024x768 took 1.4 ms, where Pillow's transpose and the copy to numpy took 4.8 and
    numpy's rot90 made contiguous 7.7."""
    if orientation not in _UPRIGHT:
        return pixels
    transpose, flip = _UPRIGHT[orientation]
    cv2 = opencv()
    turned: Pixels = cv2.transpose(pixels) if transpose else pixels
    return turned if flip is None else cv2.flip(turned, flip)


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(_ORIENTATION_TAG, 1)
    except DECODE_ERRORS:
        return 1  # a damaged EXIF block only costs us the orientation
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any decoded mode to RGB; transparency is composited onto white."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode.startswith("I"):
        return _sixteen_bit_grey(im).convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        out = Image.new("RGB", rgba.size, WHITE)
        out.paste(rgba, mask=rgba.getchannel("A"))
        return out
    try:
        return im.convert("RGB")
    except ValueError as exc:
        raise UnsupportedFormat(
            f"pixel mode {mode} is not supported", reason="unsupported_mode"
        ) from exc


def _sixteen_bit_grey(im: Image.Image) -> Image.Image:
    """16-bit grey (PNG) to 8-bit by its top byte; Pillow's convert would clip."""
    values = np.asarray(im).astype(np.uint32) >> 8
    return Image.fromarray(np.clip(values, 0, 255).astype(np.uint8), "L")
