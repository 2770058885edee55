"""Flickr's "photo unavailable" placeholder, told apart from a photo before anything is stored.

A photo deleted or made private after search indexed it still has URLs; Flickr's CDN
answers them with a redirect to `photo_unavailable.png` (or a sized variant), a 200 PNG.
Stored, it would become a "photo" under a real photo's id, geotag and licence, and every
later deleted photo a "duplicate" of it. It is known by where the redirect went, and by
its bytes: a PNG or GIF where a JPEG was asked for, whatever its size. Flickr's photos and
URL lists' are fetched through `fetch_photo`, which says so as `unavailable`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import yarl

from harvester.http import (
    Body,
    Destinations,
    HostNotAllowedError,
    HostSlots,
    HttpClient,
    UnavailableError,
)

_NAME = re.compile(r"/photo_unavailable[a-z0-9_-]*\.(?:png|gif|jpe?g)$", re.IGNORECASE)
# Flickr's CDN names: <id>_<secret>[_<size>].jpg for the sizes it makes, every one a JPEG.
_FLICKR_SIZE = re.compile(r"/\d+_[0-9a-f]+(?:_[a-z0-9]{1,2})?\.jpe?g$", re.IGNORECASE)
_PNG = b"\x89PNG\r\n\x1a\n"
_GIF = (b"GIF87a", b"GIF89a")
# Whether a body is the placeholder: (URL asked for, final URL, bytes) -> bool.
Judge = Callable[[str, str, bytes], bool]


def redirected_to_placeholder(final_url: str) -> bool:
    """True when the redirects ended at the placeholder: the one sign that holds for any URL
    (a URL list's `.jpg` may well serve a PNG; from Flickr's own sizes it never does)."""
    return bool(_NAME.search(yarl.URL(final_url).path))


def is_placeholder(requested: str, final_url: str, data: bytes) -> bool:
    """True when the body is Flickr's placeholder rather than the photo asked for."""
    # Every size Flickr makes is a JPEG (`_b.jpg`, `_z.jpg`...), and an original keeps its
    # format in its extension (`_o.png`): a PNG or GIF body for a `.jpg` is not the photo.
    asked_jpeg = yarl.URL(requested).path.lower().endswith((".jpg", ".jpeg"))
    return redirected_to_placeholder(final_url) or (asked_jpeg and _not_jpeg(data))


def listed_placeholder(requested: str, final_url: str, data: bytes) -> bool:
    """For a URL from a list: the placeholder by its redirect, or by its bytes where the
    URL is one of Flickr's own sizes (a YFCC-style list), which is never a PNG or GIF."""
    flickr_size = _FLICKR_SIZE.search(yarl.URL(requested).path) is not None
    return redirected_to_placeholder(final_url) or (flickr_size and _not_jpeg(data))


def _not_jpeg(data: bytes) -> bool:
    return data.startswith((_PNG, *_GIF))


async def fetch_photo(
    http: HttpClient,
    url: str,
    judge: Judge,
    *,
    host_slots: HostSlots | None,
    max_bytes: int | None,
    destinations: Destinations | None,
    refused_placeholder: bool = False,
) -> Body:
    """The photo's body; Flickr's placeholder in its place is `unavailable` when it was
    served (as `judge` tells), and with `refused_placeholder` when a redirect to it was
    refused for its host too (Flickr's own photos: Yahoo's hosts are no image hosts, and
    where it went says enough to not go). For a list a refused redirect stays
    `host_not_allowed` whatever its path: Yahoo's placeholder is public, so only a
    non-public address is refused there, which is what operators filter that code for."""
    try:
        body = await http.fetch(
            url, host_slots=host_slots, max_bytes=max_bytes, destinations=destinations
        )
    except HostNotAllowedError as exc:
        if not (refused_placeholder and redirected_to_placeholder(exc.url)):
            raise
        raise _unavailable(exc.url) from None
    if judge(url, body.url, body.data):
        raise _unavailable(body.url)
    return body


def _unavailable(placeholder: str) -> UnavailableError:
    return UnavailableError(
        f"Flickr's photo-unavailable placeholder in the photo's place ({placeholder}): "
        "deleted or made private since it was listed",
        url=placeholder,
    )
