"""Licences: what one allows, read from its name and URL (Flickr 0-16, CC, public domain),
and the one canonical id, name and URL of each way of writing a Creative Commons licence.

Pure: a URL list's `license` cell is read here at submit, the same text again at export.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Mapping
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
    return _cc(kind, version, port)


def _cc(kind: str, version: str, port: str | None = None) -> Licence:
    """A CC licence by CC's own name and link: `CC BY-NC 2.0`, .../licenses/by-nc/2.0/."""
    spdx = f"CC-{kind.upper()}-{version}" + (f"-{port.upper()}" if port else "")
    name = f"CC {kind.upper()} {version}" + (f" {port.upper()}" if port else "")
    url = f"{CC_SITE}/licenses/{kind}/{version}/" + (f"{port}/" if port else "")
    return Licence(spdx, name, url)


def _flickr_licences() -> dict[str, tuple[str, str | None]]:
    """Flickr's licence ids as flickr.photos.licenses.getInfo names and links them (as
    recorded on 19 June 2025): the CC 2.0 suite as 1-6, in an order of its own, the CC 4.0
    one as 11-16, in CC's."""
    table: dict[str, tuple[str, str | None]] = {
        "0": (
            "All Rights Reserved",
            "https://www.flickrhelp.com/hc/en-us/articles/"
            "10710266545556-Using-Flickr-images-shared-by-other-members",
        ),
        "7": ("No known copyright restrictions", "https://www.flickr.com/commons/usage/"),
        "8": ("United States Government Work", "https://www.usa.gov/government-copyright"),
        "9": ("Public Domain Dedication (CC0)", CC0.url),
        "10": ("Public Domain Mark", PUBLIC_DOMAIN_MARK.url),
    }
    suites = (
        (1, "2.0", ("by-nc-sa", "by-nc", "by-nc-nd", "by", "by-sa", "by-nd")),
        (11, "4.0", _KINDS),
    )
    for first, version, kinds in suites:
        for offset, kind in enumerate(kinds):
            licence = _cc(kind, version)
            table[str(first + offset)] = (licence.name, licence.url)
    return table


# What a Flickr image is credited under while the licences table has no row for its id: its
# campaign's getInfo has not answered yet, or failed (Flickr down). The EXIF is written once,
# so a bare "4" there would be published for good; getInfo's row, once there, still wins
# (Flickr renames its licences). An id not listed here (a licence Flickr adds) stays bare.
FLICKR_LICENCES: Mapping[str, tuple[str, str | None]] = _flickr_licences()


def licence_of(
    provider: str, license_id: str | None, name: str | None, url: str | None
) -> tuple[str | None, str | None]:
    """The name and URL an image is credited and filtered under: the licences table's, else
    those Flickr gives its id (FLICKR_LICENCES) or those of the licence its id names (a URL
    list's own text, canonical or as given), and Mapillary's CC BY-SA 4.0 link."""
    if name is None:
        name, url = _by_id(provider, license_id) or (None, url)
    if url is None and provider == "mapillary":
        url = MAPILLARY_URL
    return name or license_id, url


def _by_id(provider: str, license_id: str | None) -> tuple[str, str | None] | None:
    if provider == "flickr" and (listed := FLICKR_LICENCES.get(license_id or "")) is not None:
        return listed
    licence = known(license_id)
    return None if licence is None else (licence.name, licence.url)


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
