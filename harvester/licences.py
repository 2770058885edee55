"""Licences: what one allows, read from its name and URL (Flickr 0-16, CC, public domain),
and the one canonical id, name and URL of each way of writing a Creative Commons licence.

Pure: a URL list's `license` cell is read here at submit, the same text again at export.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection
from dataclasses import dataclass

_OPEN = re.compile(r"(?i)public domain|cc0|no known copyright|government work|/publicdomain/")
_CC = re.compile(r"(?i)attribution|creativecommons\.org/licenses/|\bcc[ -]by")
_NON_COMMERCIAL = re.compile(r"(?i)noncommercial|non-commercial|[-/ ]nc\b|\bby-nc")
_NO_DERIVATIVES = re.compile(r"(?i)noderiv|no deriv|[-/ ]nd\b|-nd-")

MAPILLARY_URL = "https://creativecommons.org/licenses/by-sa/4.0/"
CC_SITE = "https://creativecommons.org"

_SEP = r"[\s_-]*"
_SITE = r"(?:https?://)?(?:www\.)?creativecommons\.org"
_DEED = r"(?:/(?:deed|legalcode)(?:\.[a-z_-]+)?)?/?"  # the deed or legal code, any language
_PORT = r"(?P<port>[a-z]{2}|igo|scotland)"  # a ported 1.0-3.0 licence's jurisdiction
_VERSION = r"v?(?P<version>\d\.\d)"
# creativecommons.org/licenses/by-nc-sa/4.0/, .../3.0/de/, .../4.0/deed.en
_CC_URL = re.compile(rf"{_SITE}/licenses/(?P<kind>[a-z-]+)/{_VERSION}(?:/{_PORT})?{_DEED}")
# CC-BY-NC-SA-4.0 (SPDX), CC BY-NC-SA 4.0 (CC's own), cc_by_sa_3.0_de
_CC_TEXT = re.compile(
    rf"cc{_SEP}(?P<kind>by(?:[\s_-]+(?:nc|nd|sa))*){_SEP}{_VERSION}"
    rf"(?:{_SEP}{_PORT})?(?:{_SEP}international)?"
)
_CC0 = re.compile(
    rf"{_SITE}/publicdomain/zero/1\.0{_DEED}"
    rf"|cc{_SEP}(?:0|zero)(?:{_SEP}v?1\.0)?(?:{_SEP}universal)?"
)
_MARK = re.compile(
    rf"{_SITE}/publicdomain/mark/1\.0{_DEED}"
    rf"|(?:cc{_SEP})?(?:pdm|public{_SEP}domain{_SEP}mark)(?:{_SEP}v?1\.0)?"
)
_RESERVED = re.compile(rf"(?:©{_SEP})?all{_SEP}rights{_SEP}reserved")
_KINDS = ("by", "by-sa", "by-nd", "by-nc", "by-nc-sa", "by-nc-nd")
_VERSIONS = ("1.0", "2.0", "2.5", "3.0", "4.0")


@dataclass(frozen=True)
class Licence:
    """One licence however it was written: `id` is SPDX's where SPDX has one."""

    id: str
    name: str
    url: str | None


CC0 = Licence("CC0-1.0", "CC0 1.0", f"{CC_SITE}/publicdomain/zero/1.0/")
PUBLIC_DOMAIN_MARK = Licence(
    "CC-PDM-1.0", "Public Domain Mark 1.0", f"{CC_SITE}/publicdomain/mark/1.0/"
)
ALL_RIGHTS_RESERVED = Licence("all-rights-reserved", "All Rights Reserved", None)
_FIXED = ((_CC0, CC0), (_MARK, PUBLIC_DOMAIN_MARK), (_RESERVED, ALL_RIGHTS_RESERVED))


@functools.lru_cache(maxsize=1024)
def known(text: str | None) -> Licence | None:
    """The licence an SPDX id, a usual spelling or a creativecommons.org URL names; None for
    any other text (it is kept as given)."""
    folded = (text or "").strip().casefold()
    for pattern, licence in _FIXED:
        if pattern.fullmatch(folded):
            return licence
    found = _CC_URL.fullmatch(folded) or _CC_TEXT.fullmatch(folded)
    if found is None:
        return None
    kind = re.sub(r"[\s_-]+", "-", found["kind"])
    version, port = found["version"], found["port"]
    if kind not in _KINDS or version not in _VERSIONS or (port and version == "4.0"):
        return None
    spdx = f"CC-{kind.upper()}-{version}" + (f"-{port.upper()}" if port else "")
    name = f"CC {kind.upper()} {version}" + (f" {port.upper()}" if port else "")
    url = f"{CC_SITE}/licenses/{kind}/{version}/" + (f"{port}/" if port else "")
    return Licence(spdx, name, url)


def licence_of(
    provider: str, license_id: str | None, name: str | None, url: str | None
) -> tuple[str | None, str | None]:
    """The name and URL an image is credited and filtered under: the licences table's, else
    those of the licence its id names (a URL list's own text, canonical or as given), and
    Mapillary's CC BY-SA 4.0 link."""
    if name is None and (licence := known(license_id)) is not None:
        name, url = licence.name, licence.url
    if url is None and provider == "mapillary":
        url = MAPILLARY_URL
    return name or license_id, url


def _text(name: str | None, url: str | None) -> str:
    return f"{name or ''} {url or ''}"


def granted(name: str | None, url: str | None) -> bool:
    """Whether the licence lets others reuse the image at all (CC, public domain); All
    Rights Reserved, no licence and text not read as a licence grant nothing known."""
    return _allows(_text(name, url), None)


def commercial_ok(name: str | None, url: str | None) -> bool:
    """Open licences and CC licences without NC; All Rights Reserved and unknown are not."""
    return _allows(_text(name, url), _NON_COMMERCIAL)


def derivatives_ok(name: str | None, url: str | None) -> bool:
    """Open licences and CC licences without ND."""
    return _allows(_text(name, url), _NO_DERIVATIVES)


def _allows(text: str, forbidden: re.Pattern[str] | None) -> bool:
    """Open (public domain) always; CC unless `forbidden` names one of its terms."""
    if _OPEN.search(text):
        return True
    return bool(_CC.search(text)) and not (forbidden is not None and forbidden.search(text))


def license_matches(wanted: Collection[str], *values: str | None) -> bool:
    """`--license` names ids, names or URLs (case-insensitive; any spelling of a licence
    `known` reads stands for all of them)."""
    folded = {_key(w) for w in wanted}
    return any(v is not None and _key(v) in folded for v in values)


def _key(text: str) -> str:
    licence = known(text)
    return (licence.id if licence is not None else text.strip()).casefold()
