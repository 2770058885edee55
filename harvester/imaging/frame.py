"""Find the artsy border (one or several flat concentric bands) around a photo.

A frame is told apart from content that merely touches an edge (sky, snow, a
white wall, a studio backdrop) by three properties a real frame has and
content almost never has at once:

* each band is flat along its full length on all four sides at once, in one
  colour, so bands are peeled as rings and any non-flat side stops the peel;
* it is thin: a ring reaching `MAX_SIDE_FRACTION` of the image is background,
  not a frame;
* it ends where the picture starts: the line just inside differs from the
  innermost band on at least three sides (a backdrop continues on most sides).

A side may extend the innermost band a little further than the ring (a mat
wider at the top and bottom) but only as far as the ring is deep and only if
it, too, ends on content.

Work is done on thin edge strips, a few lines at a time, so a frameless photo
costs four short strips.

As im2gps's remove_frame does, a found frame is cut with a small extra margin on all
four sides: frames are often layered and concentric, with a thin line or shadow just
inside the last flat band that no flatness test sees.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from PIL import Image

__all__ = ["detect_frame"]

Lines = npt.NDArray[np.int16]
Pixels = npt.NDArray[np.uint8]  # height x width x RGB
Frame = tuple[int, int, int, int]
Colour = npt.NDArray[np.float64]

TOLERANCE = 24  # per channel: JPEG noise and ringing on a flat band stay within it
OUTLIER_SHARE = 0.02  # share of a line allowed to deviate (dust, compression blips)
MAX_SIDE_FRACTION = 0.2  # a deeper "band" is background, not a frame
FRINGE = 2  # lines of edge ringing between the last band and the picture
BATCH = 16
MIN_CAP = 4  # images this small have no room for a frame worth finding
MARGIN_FRACTION = 0.005  # of the shorter side: the extra cut inside a found frame
MIN_MARGIN = 2

_SIDES = ("top", "right", "bottom", "left")


def detect_frame(picture: Image.Image | Pixels) -> Frame:
    """Return the widths to cut (top, right, bottom, left) in this image's pixels: the
    frame found plus the margin, or nothing at all."""
    if isinstance(picture, Image.Image):
        if picture.mode != "RGB":
            raise ValueError("frame detection expects an RGB image")
        img: Pixels = np.asarray(picture)
    elif picture.ndim != 3 or picture.shape[2] != 3:
        raise ValueError("frame detection expects RGB pixels")
    else:
        img = picture
    h, w = img.shape[:2]
    cap = int(MAX_SIDE_FRACTION * min(w, h))
    if cap < MIN_CAP:
        return (0, 0, 0, 0)
    depth, colour = _ring_depth(img, cap)
    if depth == 0 or depth >= cap or colour is None:
        return (0, 0, 0, 0)
    # Past the ring, lines leave out the deepest the other sides can reach.
    inset = 2 * depth + FRINGE
    widths = []
    ends_on_content = 0
    for side in _SIDES:
        side_cap = int(MAX_SIDE_FRACTION * (h if side in ("top", "bottom") else w))
        width = _extend_band(img, side, depth, colour, min(side_cap, 2 * depth), inset)
        differs = _differs_inside(img, side, width, colour, inset)
        if width > depth and not differs:
            width = depth  # the "band" ran on into same-coloured picture: keep the ring
            differs = _differs_inside(img, side, width, colour, inset)
        ends_on_content += differs
        # Ringing only sits between the band and a different-looking picture.
        widths.append(width + _fringe(img, side, width, colour, inset) if differs else width)
    if ends_on_content < 3:
        return (0, 0, 0, 0)
    margin = max(MIN_MARGIN, math.ceil(MARGIN_FRACTION * min(w, h)))
    top, right, bottom, left = (width + margin for width in widths)
    return (top, right, bottom, left)


def _ring_depth(img: Pixels, cap: int) -> tuple[int, Colour | None]:
    """Depth of the flat rings shared by all four sides, and the innermost colour."""
    # Most photos have no frame and fail on the first side looked at.
    if not all(bool(_line_stats(_lines(img, side, 0, 1, 1))[1][0]) for side in _SIDES):
        return 0, None
    depth = 0
    colour: Colour | None = None
    batch = 2
    while depth < cap:
        k = min(batch, cap - depth)
        stats = [_line_stats(_lines(img, side, depth, k, depth + k)) for side in _SIDES]
        colours = np.stack([c for c, _ in stats])  # (4, k, 3)
        flat = np.all(np.stack([f for _, f in stats]), axis=0)
        agree = np.all(np.ptp(colours, axis=0) <= TOLERANCE, axis=1)
        ok = flat & agree
        n = k if bool(ok.all()) else int(np.argmin(ok))
        if n:
            colour = colours[:, n - 1].mean(axis=0)
        depth += n
        if n < k:
            break
        batch = min(2 * batch, BATCH)
    return depth, colour


def _extend_band(img: Pixels, side: str, ring: int, colour: Colour, limit: int, inset: int) -> int:
    """How far this side stays flat in the innermost band's colour (at most `limit`)."""
    width = ring
    k = 1  # most frames are the same width all round: one line settles it
    while width < limit:
        k = min(k, limit - width)
        line_colours, flat = _line_stats(_lines(img, side, width, k, inset))
        same = flat & (np.abs(line_colours - colour).max(axis=1) <= TOLERANCE)
        n = k if bool(same.all()) else int(np.argmin(same))
        width += n
        if n < k:
            break
        k = BATCH
    return width


def _fringe(img: Pixels, side: str, width: int, colour: Colour, inset: int) -> int:
    """Lines next to the band still mostly in its colour (ringing, chroma bleed)."""
    lines = _lines(img, side, width, FRINGE, inset)
    near = (_deviation(lines, colour) <= 2 * TOLERANCE).mean(axis=1) >= 0.5
    return FRINGE if bool(near.all()) else int(np.argmin(near))


def _differs_inside(img: Pixels, side: str, width: int, colour: Colour, inset: int) -> bool:
    """True when the picture starts inside: the line past the fringe is not the band colour."""
    lines = _lines(img, side, width + FRINGE, 1, inset)
    return bool((_deviation(lines, colour) <= TOLERANCE).mean() < 0.5)


def _line_stats(lines: Lines) -> tuple[Colour, npt.NDArray[np.bool_]]:
    """Per line: its median colour, and whether nearly all of it is that colour."""
    colours = np.median(lines[:, ::4], axis=1)  # a sample is enough for the colour
    off = np.count_nonzero(_deviation(lines, colours[:, None, :]) > TOLERANCE, axis=1)
    return colours, off <= OUTLIER_SHARE * lines.shape[1]


def _deviation(lines: Lines, colour: Colour) -> Lines:
    """Per pixel, the largest channel difference from `colour` (slices beat a reduce)."""
    d = np.abs(lines - colour.astype(np.int16))
    return np.maximum(np.maximum(d[..., 0], d[..., 1]), d[..., 2])


def _lines(img: Pixels, side: str, start: int, k: int, inset: int) -> Lines:
    """Lines `start`..`start+k-1` from `side` (outermost first), each running
    along the side but leaving out `inset` pixels at both ends (the other
    sides' bands)."""
    h, w = img.shape[:2]
    if side == "top":
        strip = img[start : start + k, inset : w - inset]
    elif side == "bottom":
        strip = img[h - start - k : h - start, inset : w - inset]
    elif side == "left":
        strip = img[inset : h - inset, start : start + k]
    else:
        strip = img[inset : h - inset, w - start - k : w - start]
    a = strip.astype(np.int16)
    if side in ("left", "right"):
        a = a.transpose(1, 0, 2)
    if side in ("bottom", "right"):
        a = a[::-1]
    return a
