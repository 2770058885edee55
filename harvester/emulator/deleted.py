"""Photos and images deleted since they were indexed, and Flickr's placeholder for them.

Search indexes lag behind deletions, so a deleted Flickr photo is still found by search
while its CDN URL redirects to `photo_unavailable.png`, a 200 PNG placeholder; a deleted
Mapillary image is refused by id. Which ones are deleted is a pure function of the seed,
so tests compute the same truth the emulator serves.
"""

from __future__ import annotations

import functools
import hashlib
import io

from PIL import Image, ImageDraw

PLACEHOLDER_PATH = "/cdn/static/images/en-us/photo_unavailable.png"
PLACEHOLDER_SIZE = (500, 374)


def _unit(seed: int, provider: str, item_id: str) -> float:
    digest = hashlib.blake2b(f"{seed}:{provider}:{item_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class Deletions:
    """Which Flickr photo ids and Mapillary image ids are gone."""

    def __init__(self, seed: int, share: float, mapillary_ids: frozenset[str] = frozenset()):
        self.seed = seed
        self.share = share
        self.mapillary_ids = mapillary_ids

    def flickr(self, photo_id: str) -> bool:
        return self.share > 0 and _unit(self.seed, "flickr", photo_id) < self.share

    def mapillary(self, image_id: str) -> bool:
        if image_id in self.mapillary_ids:
            return True
        return self.share > 0 and _unit(self.seed, "mapillary", image_id) < self.share


@functools.lru_cache(maxsize=1)
def placeholder_png() -> bytes:
    """The grey "This photo is no longer available" picture, always the same bytes."""
    img = Image.new("RGB", PLACEHOLDER_SIZE, (241, 241, 241))
    draw = ImageDraw.Draw(img)
    draw.rectangle((150, 110, 350, 230), outline=(200, 200, 200), width=6)
    draw.text((128, 270), "This photo is no longer available", fill=(120, 120, 120))
    out = io.BytesIO()
    img.save(out, "PNG", optimize=True)
    return out.getvalue()
