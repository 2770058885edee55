"""Synthetic photos and hostile bodies for the emulator's image CDN.

Images must compress and look like photos (smooth light, hard edges, texture
and sensor noise right up to the borders) so that size limits, resize cost and
frame detection are exercised honestly, not on flat colour. Everything is a
pure function of the recipe, so a URL always serves the same bytes.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageDraw

__all__ = ["HOSTILE_KINDS", "ImageRecipe", "hostile", "render"]

RGB = tuple[int, int, int]

HOSTILE_KINDS: tuple[str, ...] = ("truncated", "empty", "html", "bomb", "garbage")

_FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "gif": "GIF"}

# The transpose that, applied to the upright picture, gives the stored pixels
# for each EXIF orientation (the inverse of what a viewer applies to display).
_STORE_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}

_SKY_COLOURS: tuple[RGB, ...] = ((176, 204, 232), (250, 250, 250), (214, 218, 222))

_EXIF_ORIENTATION_TAG = 0x0112


@dataclass(frozen=True)
class ImageRecipe:
    """How to draw one image.

    `width` x `height` are the upright (displayed) dimensions; with an EXIF
    orientation of 5-8 the stored pixel array is `height` x `width`. Frames are
    (band width px, rgb) pairs, outermost first, drawn inside the canvas.
    """

    seed: int
    width: int
    height: int
    frames: tuple[tuple[int, RGB], ...] = ()
    uniform_sky: bool = False
    fmt: str = "jpeg"
    cmyk: bool = False
    exif_orientation: int = 1
    progressive: bool = False
    quality: int = 90


def render(recipe: ImageRecipe) -> bytes:
    """Encode the photo-like picture the recipe describes."""
    if recipe.fmt not in _FORMATS:
        raise ValueError(f"unknown image format {recipe.fmt!r}")
    if recipe.width < 1 or recipe.height < 1:
        raise ValueError("image dimensions must be positive")
    if not 1 <= recipe.exif_orientation <= 8:
        raise ValueError("EXIF orientation must be 1..8")
    rng = np.random.default_rng(recipe.seed)
    img = _photo(rng, recipe.width, recipe.height)
    inner = _draw_frames(img, recipe.frames)
    if recipe.uniform_sky:
        _draw_sky(img, inner, rng)
    transpose = _STORE_TRANSPOSE.get(recipe.exif_orientation)
    if transpose is not None:
        img = img.transpose(transpose)
    return _encode(img, recipe)


def _photo(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """Smooth light, a few hard-edged shapes, blotchy texture and fine noise."""
    light = rng.integers(30, 226, size=(3, 4, 3), dtype=np.uint8)
    img = Image.fromarray(light, "RGB").resize((w, h), Image.Resampling.BILINEAR)
    _draw_shapes(img, rng)
    return ImageChops.add(img, _texture(rng, w, h), scale=1.0, offset=-128)


def _draw_shapes(img: Image.Image, rng: np.random.Generator) -> None:
    """Buildings, hills and blobs; some cross the borders so edges reach them."""
    w, h = img.size
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(6, 14))):
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        x0 = int(rng.integers(-w // 5, w))
        y0 = int(rng.integers(-h // 5, h))
        x1 = x0 + int(rng.integers(w // 20, w // 2))
        y1 = y0 + int(rng.integers(h // 20, h // 2))
        kind = int(rng.integers(0, 3))
        if kind == 0:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        elif kind == 1:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            points = [
                (int(x), int(y))
                for x, y in zip(
                    rng.integers(x0, x1 + 1, size=5), rng.integers(y0, y1 + 1, size=5), strict=True
                )
            ]
            draw.polygon(points, fill=colour)


def _texture(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """Grey texture centred on 128: mid-frequency blotches plus sensor noise."""
    coarse = rng.integers(0, 256, size=(max(1, h // 6), max(1, w // 6)), dtype=np.uint8)
    blotch = Image.fromarray(coarse, "L").resize((w, h), Image.Resampling.BILINEAR)
    blotch = blotch.point([96 + (v * 64) // 255 for v in range(256)])
    fine = Image.frombytes("L", (w, h), rng.bytes(w * h))
    fine = fine.point([124 + (v * 9) // 255 for v in range(256)])
    grey = ImageChops.add(blotch, fine, scale=1.0, offset=-128)
    return Image.merge("RGB", (grey, grey, grey))


def _draw_frames(
    img: Image.Image, frames: tuple[tuple[int, RGB], ...]
) -> tuple[int, int, int, int]:
    """Paint flat concentric bands; return the inner box (left, top, right, bottom)."""
    w, h = img.size
    left, top, right, bottom = 0, 0, w, h
    draw = ImageDraw.Draw(img)
    for band, colour in frames:
        if band <= 0:
            continue
        if right - left <= 2 * band or bottom - top <= 2 * band:
            raise ValueError("frames leave no content")
        draw.rectangle((left, top, right - 1, bottom - 1), outline=colour, width=band)
        left, top, right, bottom = left + band, top + band, right - band, bottom - band
    return left, top, right, bottom


def _draw_sky(img: Image.Image, inner: tuple[int, int, int, int], rng: np.random.Generator) -> None:
    """Flat sky over the top ~35% of the content, touching its top and sides."""
    left, top, right, bottom = inner
    colour = _SKY_COLOURS[int(rng.integers(0, len(_SKY_COLOURS)))]
    sky_bottom = top + (bottom - top) * 35 // 100
    ImageDraw.Draw(img).rectangle((left, top, right - 1, sky_bottom - 1), fill=colour)


def _encode(img: Image.Image, recipe: ImageRecipe) -> bytes:
    out = io.BytesIO()
    exif = Image.Exif()
    if recipe.exif_orientation != 1:
        exif[_EXIF_ORIENTATION_TAG] = recipe.exif_orientation
    exif_bytes = exif.tobytes() if len(exif) else b""
    if recipe.fmt == "jpeg":
        if recipe.cmyk:
            img = img.convert("CMYK")
        img.save(
            out,
            "JPEG",
            quality=recipe.quality,
            progressive=recipe.progressive,
            exif=exif_bytes,
        )
    elif recipe.fmt == "png":
        img.save(out, "PNG", compress_level=1, exif=exif_bytes)
    elif recipe.fmt == "gif":
        # Two frames, as an animated GIF (what most GIF uploads are), in a 256-colour palette.
        frames = [img, ImageChops.offset(img, max(1, img.width // 50), 0)]
        paletted = [f.quantize(colors=256, method=Image.Quantize.MEDIANCUT) for f in frames]
        paletted[0].save(out, "GIF", save_all=True, append_images=paletted[1:], duration=200)
    else:
        img.save(out, "WEBP", quality=recipe.quality, method=0, exif=exif_bytes)
    return out.getvalue()


def hostile(kind: str, seed: int) -> tuple[bytes, str]:
    """A body that must never become a stored image, and its content type."""
    if kind == "truncated":
        whole = render(ImageRecipe(seed=seed, width=800, height=600))
        rng = np.random.default_rng(seed)
        cut = int(len(whole) * float(rng.uniform(0.3, 0.8)))
        return whole[:cut], "image/jpeg"
    if kind == "empty":
        return b"", "image/jpeg"
    if kind == "html":
        page = (
            "<!DOCTYPE html>\n<html><head><title>Photo unavailable</title></head>"
            f"<body><h1>This photo is no longer available</h1><p>ref {seed}</p></body></html>\n"
        )
        return page.encode(), "image/jpeg"
    if kind == "bomb":
        return _png_bomb(seed), "image/png"
    if kind == "garbage":
        rng = np.random.default_rng(seed)
        # A fixed first byte that starts no known format or markup.
        return b"\x13" + rng.bytes(int(rng.integers(2_000, 20_000))), "image/jpeg"
    raise ValueError(f"unknown hostile kind {kind!r}")


def _png_bomb(seed: int) -> bytes:
    """A few hundred bytes whose header claims ~1.6 gigapixels."""
    side = 40_000 + seed % 1000

    def chunk(tag: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(tag + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    row = b"\x00" + b"\x00" * (side * 3)
    idat = zlib.compress(row * 4, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
