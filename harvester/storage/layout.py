"""Paths as a pure function of the image row: root/<provider>/<group>/<shard:05d>/<name>.jpg."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import PurePosixPath

FILES_PER_SHARD = 1000
MAX_SLUG = 80
MAX_NAME = 120
_UNSAFE = re.compile(r"[^a-z0-9._-]+")
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9@._-]+")


def slug(text: str) -> str:
    """A directory name from a query or id that can never escape the storage root."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    cleaned = _UNSAFE.sub("-", ascii_text.lower()).strip("-.")
    cleaned = re.sub(r"-{2,}", "-", cleaned)[:MAX_SLUG].strip("-.")
    if not cleaned:
        # Nothing printable survived (e.g. a query in Japanese): name it by its hash.
        return "q-" + digest(text)
    return cleaned


def shard_of(index: int) -> int:
    return index // FILES_PER_SHARD


def file_name(*parts: str) -> str:
    """`a_b_c.jpg` from provider ids; ids that needed cleaning get a hash, so none collide."""
    original = "_".join(parts)
    name = "_".join(_NAME_UNSAFE.sub("-", part).strip(".") or "x" for part in parts)
    if name != original or len(name) > MAX_NAME:
        name = f"{name[:MAX_NAME]}-{digest(original)}"
    return name + ".jpg"


def unique_slug(text: str) -> str:
    """A slug that two different names never share (URL campaigns keep their own folder)."""
    cleaned = slug(text)
    return cleaned if cleaned == text else f"{cleaned[: MAX_SLUG - 13]}-{digest(text)}"


def digest(text: str) -> str:
    """A short hash of text, appended to a name that had to change so no two collide."""
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def relative_path(provider: str, group: str, shard: int, name: str) -> PurePosixPath:
    for component in (provider, group, name):
        if not component or "/" in component or "\\" in component or component in (".", ".."):
            raise ValueError(f"unsafe path component {component!r}")
    if shard < 0:
        raise ValueError(f"negative shard {shard}")
    return PurePosixPath(provider, group, f"{shard:05d}", name)
