"""Flickr's "photo unavailable" placeholder, told apart from a photo before anything is stored.

A photo deleted or made private after search indexed it still has URLs; Flickr's CDN
answers them with a redirect to `photo_unavailable.png` (or a sized variant), a 200 PNG.
Stored, it would become a "photo" under a real photo's id, geotag and licence, and every
later deleted photo a "duplicate" of it. It is known by where the redirect went, and by
its bytes: a PNG of the placeholder's size where a JPEG was asked for.
"""

from __future__ import annotations

import re
import struct

import yarl

_NAME = re.compile(r"/photo_unavailable[a-z0-9_-]*\.(?:png|gif|jpe?g)$", re.IGNORECASE)
_PNG = b"\x89PNG\r\n\x1a\n"
# (width, height) of the placeholder pictures Flickr serves for its sizes.
PLACEHOLDER_SIZES = frozenset({(500, 374), (1024, 768), (240, 180), (100, 75), (75, 75)})


def is_placeholder(requested: str, final_url: str, data: bytes) -> bool:
    """True when the body is Flickr's placeholder rather than the photo asked for."""
    if _NAME.search(yarl.URL(final_url).path):
        return True
    asked_jpeg = yarl.URL(requested).path.lower().endswith((".jpg", ".jpeg"))
    return asked_jpeg and _png_size(data) in PLACEHOLDER_SIZES


def _png_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24 or not data.startswith(_PNG) or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return width, height
