"""What a licence allows, read from its name and URL (Flickr 0-16, CC, public domain)."""

from __future__ import annotations

import re
from collections.abc import Collection

_OPEN = re.compile(r"(?i)public domain|cc0|no known copyright|government work|/publicdomain/")
_CC = re.compile(r"(?i)attribution|creativecommons\.org/licenses/|\bcc[ -]by")
_NON_COMMERCIAL = re.compile(r"(?i)noncommercial|non-commercial|[-/ ]nc\b|\bby-nc")
_NO_DERIVATIVES = re.compile(r"(?i)noderiv|no deriv|[-/ ]nd\b|-nd-")

MAPILLARY_URL = "https://creativecommons.org/licenses/by-sa/4.0/"


def licence_of(
    provider: str, license_id: str | None, name: str | None, url: str | None
) -> tuple[str | None, str | None]:
    """The name and URL an image is credited and filtered under: the licences table's, else
    the id the source gave (a URL list's own text), and Mapillary's CC BY-SA 4.0 link."""
    if url is None and provider == "mapillary":
        url = MAPILLARY_URL
    return name or license_id, url


def _text(name: str | None, url: str | None) -> str:
    return f"{name or ''} {url or ''}"


def commercial_ok(name: str | None, url: str | None) -> bool:
    """Open licences and CC licences without NC; All Rights Reserved and unknown are not."""
    text = _text(name, url)
    if _OPEN.search(text):
        return True
    return bool(_CC.search(text)) and not _NON_COMMERCIAL.search(text)


def derivatives_ok(name: str | None, url: str | None) -> bool:
    """Open licences and CC licences without ND."""
    text = _text(name, url)
    if _OPEN.search(text):
        return True
    return bool(_CC.search(text)) and not _NO_DERIVATIVES.search(text)


def license_matches(wanted: Collection[str], license_id: str | None, name: str | None) -> bool:
    """`--license` names ids or names (case-insensitive)."""
    folded = {w.strip().casefold() for w in wanted}
    return any(v is not None and v.casefold() in folded for v in (license_id, name))
