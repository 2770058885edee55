"""Lenient reading of what Flickr and operators hand us: query files, API bodies, photos.

Flickr encodes one field as a number on one path and a string on another, marks missing
geo as "0", wraps JSON in `jsonFlickrApi(...)` unless told not to, and reports errors as
HTTP 200 with `stat: fail`. Everything here tolerates that and nothing here does I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from harvester.errors import InputError
from harvester.http import TransientHttpError, flickr_stat_error
from harvester.records import FoundImage
from harvester.sources.fields import identifier, instant, number, positive, whole
from harvester.storage.layout import file_name, slug

MAX_QUERY_CHARS = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_JSONP = re.compile(r"^\s*[A-Za-z_$][\w$.]*\s*\((.*)\)\s*;?\s*$", re.DOTALL)
# Not `unavailable` (deleted or private): the photo is there, its owner hides the original and
# Flickr made no Medium 640 of it, so every size offered is at most 500 px.
NO_URL = "no_size: no size to take (no url_l, public original, url_c or url_z)"
# Large, then the Original (downsampled); failing both, the biggest Medium there is.
PREFERRED = (("l", "Large"), ("o", "Original"))
FALLBACKS = (("c", "Medium 800"), ("z", "Medium 640"))
LARGE_EDGE = 1024
# For a campaign wanting more than Large: Large 1600 and 2048 (each URL with a secret of its
# own, taken as search gives it) beside Large and the Original, by longest side.
BIG = (("l", "Large", 1024), ("h", "Large 1600", 1600), ("k", "Large 2048", 2048))
GIF_ONLY = "not_an_image: the original is a GIF (not accepted) and Flickr offers no Large or Medium"
SIZE_NOTE = "harvester_size_note"  # in raw: why a smaller size than Large/Original was taken


# -- the queries file -------------------------------------------------------------------


def parse_queries(
    text: str, *, source: str = "queries file"
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(queries, negative terms) from one-per-line text; `-term` lines are negatives.

    Blank lines and lines starting with `#` are ignored; repeats are dropped, order kept.
    """
    queries: dict[str, None] = {}
    negatives: dict[str, None] = {}
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}, line {line_no}"
        if _CONTROL.search(line):
            raise InputError(f"{where}: control characters are not allowed")
        if line.startswith("-"):
            term = line[1:].strip()
            if not term or term.startswith("-"):
                raise InputError(f"{where}: {line!r} is not a negative term (write '-word')")
            negatives.setdefault(term.lower(), None)
            continue
        if len(line) > MAX_QUERY_CHARS:
            raise InputError(f"{where}: a query is at most {MAX_QUERY_CHARS} characters")
        queries.setdefault(" ".join(line.split()), None)
    if not queries:
        raise InputError(f"{source}: no queries (one per line; '#' comments, '-term' negatives)")
    return tuple(queries), tuple(negatives)


# -- lenient values ----------------------------------------------------------------------


def as_text(value: Any) -> str | None:
    """A string field, also when wrapped as {"_content": ...} as Flickr sometimes does."""
    if isinstance(value, Mapping):
        value = value.get("_content")
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def unix_time(value: Any) -> datetime | None:
    seconds = whole(value)
    return instant(seconds) if seconds is not None and seconds > 0 else None


# Flickr's `datetakengranularity`: 0 to the second, 4 the month, 6 the year; 8 is "circa",
# a guess, which no column claims. Each known one keeps that many characters of ISO 8601.
_PRECISION = {0: ("%Y-%m-%d %H:%M:%S", 19), 4: ("%Y-%m", 7), 6: ("%Y", 4)}


def taken_local(record: Mapping[str, Any]) -> str | None:
    """Flickr's `datetaken`, a wall clock with no zone, as naive ISO 8601 to the precision
    Flickr vouches for (`2019-05-04T12:30:00`, `2019-05`, `2019`); None when unknown."""
    unknown = record.get("datetakenunknown")
    if unknown is True or whole(unknown) == 1 or unknown in ("true", "True"):
        return None  # Flickr has sent this flag as a number, a string and a JSON boolean
    text = as_text(record.get("datetaken"))
    granularity = whole(record.get("datetakengranularity"))
    precision = _PRECISION.get(0 if granularity is None else granularity)
    if not text or precision is None:
        return None
    pattern, keep = precision
    try:  # a month or year may come with a zero day ("2008-05-00 00:00:00")
        taken = datetime.strptime(text.strip()[:keep], pattern)
    except ValueError:
        return None
    return taken.isoformat()[:keep]


def geo(record: Mapping[str, Any]) -> tuple[float | None, float | None, int | None]:
    """(lat, lon, accuracy); Flickr says "no geo" with zeros, never with absence alone."""
    lat, lon = number(record.get("latitude")), number(record.get("longitude"))
    accuracy = positive(record.get("accuracy"))
    if lat is None or lon is None or (lat == 0 and lon == 0) or not -90 <= lat <= 90:
        return None, None, None
    if not -180 <= lon <= 180:
        return None, None, None
    return lat, lon, accuracy


# -- API bodies --------------------------------------------------------------------------


def decode_body(text: str, *, url: str) -> dict[str, Any]:
    """The JSON object of a Flickr answer, JSONP wrapper or not. Anything else (an HTML
    outage page, a cut-off answer) is worth another try later: `bad_response`, as the
    client's own JSON reading says it."""
    match = _JSONP.match(text)
    inner = match.group(1) if match else text
    try:
        body = json.loads(inner)
    except json.JSONDecodeError as exc:
        # Not chained: the decoder keeps the whole body, which we do not vouch for.
        why = f"something not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        raise bad_answer(why, url) from None
    except (ValueError, RecursionError):  # a 4,300-digit number, a nesting past the stack
        raise bad_answer("JSON beyond what the parser can hold", url) from None
    if not isinstance(body, dict):
        raise bad_answer("a non-object", url)
    return body


def bad_answer(why: str, url: str) -> TransientHttpError:
    """An answer Flickr should not have given, worth another try later (`bad_response`)."""
    return TransientHttpError(
        f"Flickr answered with {why} from {url}", url=url, reason="bad_response"
    )


def check_stat(body: Mapping[str, Any], *, url: str, secrets: Sequence[str]) -> None:
    """Raise the error class a `stat: fail` answer deserves (HTTP 200 notwithstanding)."""
    error = flickr_stat_error(body, url=url, secrets=secrets)
    if error is not None:
        raise error


@dataclass(frozen=True)
class SearchPage:
    """One page of flickr.photos.search."""

    total: int
    pages: int
    photos: list[Mapping[str, Any]]


def search_page(body: Mapping[str, Any], *, url: str) -> SearchPage:
    """One page, refused as `bad_response` when its counts cannot be trusted: Flickr now and
    then answers a search that matches with `"total": ""` and pages 0 (flickrapi issue #109),
    which read as "nothing here" would leave the window's photos out for good. Nothing
    matched is `"total": "0"`."""
    photos = body.get("photos")
    if not isinstance(photos, Mapping):
        raise TransientHttpError(f"Flickr search answer without 'photos' from {url}", url=url)
    listed = photos.get("photo")
    records = [p for p in listed if isinstance(p, Mapping)] if isinstance(listed, list) else []
    total, pages = whole(photos.get("total")), max(0, whole(photos.get("pages")) or 0)
    if total is None:
        raise bad_answer(
            f"a search total that is no number ({str(photos.get('total'))[:40]!r})", url
        )
    if pages == 0 and (total > 0 or records):
        raise bad_answer(f"0 pages of a search of {total} listing {len(records)}", url)
    return SearchPage(total=max(0, total), pages=pages, photos=records)


def licenses_of(body: Mapping[str, Any]) -> list[tuple[str, str, str | None]]:
    """(id, name, url) rows of flickr.photos.licenses.getInfo."""
    block = body.get("licenses")
    rows = block.get("license") if isinstance(block, Mapping) else None
    out: list[tuple[str, str, str | None]] = []
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, Mapping):
            continue
        license_id, name = as_text(row.get("id")), as_text(row.get("name"))
        if license_id is None or name is None:
            continue
        out.append((license_id, name, as_text(row.get("url")) or None))
    return out


# -- photos ------------------------------------------------------------------------------


class NegativeTerms:
    """Client-side negative terms over title, tags and description (whole words)."""

    def __init__(self, terms: Iterable[str]) -> None:
        words = [re.escape(t.lower()) for t in terms if t.strip()]
        self._pattern = re.compile(r"(?<!\w)(?:" + "|".join(words) + r")(?!\w)") if words else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def matches(self, record: Mapping[str, Any]) -> bool:
        if self._pattern is None:
            return False
        fields = (record.get("title"), record.get("tags"), record.get("description"))
        text = "\n".join(t for t in (as_text(f) for f in fields) if t).lower()
        return self._pattern.search(text) is not None


def photo_id(record: Mapping[str, Any]) -> str | None:
    return identifier(as_text(record.get("id")))


def found_image(
    record: Mapping[str, Any], query: str, min_side: int, max_side: int = LARGE_EDGE
) -> FoundImage | None:
    """The catalog row for one search result; None if it lacks what names its file."""
    parts = [identifier(as_text(record.get(k))) for k in ("id", "secret", "server", "owner")]
    if not all(parts):
        return None
    pid, secret, server, owner = (p or "" for p in parts)
    source_url, skip, note = _pick_size(record, min_side, max_side)
    o_width = positive(record.get("o_width")) or positive(record.get("width_o"))
    o_height = positive(record.get("o_height")) or positive(record.get("height_o"))
    width, height = o_width, o_height
    if width is None or height is None:
        width, height = positive(record.get("width_l")), positive(record.get("height_l"))
    lat, lon, accuracy = geo(record)
    return FoundImage(
        provider_id=pid,
        group=slug(query),
        file_name=file_name(pid, secret, server, owner),
        source_url=source_url,
        record={
            "lat": lat,
            "lon": lon,
            "accuracy": accuracy,
            "captured_at": None,  # a UTC instant, which datetaken (no zone) is not
            "captured_local": taken_local(record),
            "uploaded_at": unix_time(record.get("dateupload")),
            "owner": owner,
            "owner_name": as_text(record.get("ownername")),
            "title": as_text(record.get("title")),
            "tags": as_text(record.get("tags")),
            "license_id": as_text(record.get("license")),
            "raw": _raw(record, note),
            "source_width": width,
            "source_height": height,
        },
        skip_reason=skip,
    )


def _raw(record: Mapping[str, Any], size_note: str | None) -> dict[str, Any]:
    """The record as Flickr gave it, plus, when the size fetched is not Large or Original, why."""
    raw = dict(record)
    if size_note is not None:
        raw[SIZE_NOTE] = size_note
    return raw


def _pick_size(
    record: Mapping[str, Any], min_side: int, max_side: int = LARGE_EDGE
) -> tuple[str | None, str | None, str | None]:
    """(URL to fetch, skip reason, note on a fallback): the first size Flickr offers, in
    preference order, skipped before download when its advertised dimensions are too small."""
    gif = _gif_original(record)
    preferred = PREFERRED if max_side <= LARGE_EDGE else _big_first(record, max_side, gif)
    for sizes, fallback in ((preferred, False), (FALLBACKS, True)):
        for suffix, name in sizes:
            url = as_text(record.get(f"url_{suffix}"))
            if not url or (suffix == "o" and gif and _has_fallback(record)):
                continue
            note = f"no url_l or public original: took {name} (url_{suffix})" if fallback else None
            if fallback and gif:
                note = f"no url_l and a GIF original (not accepted): took {name} (url_{suffix})"
            width, height = _dims(record, suffix)
            if width and height and min(width, height) < min_side:
                what = "original" if suffix == "o" else name
                return (
                    url,
                    (
                        f"too_small: {what} {width}x{height} is below the minimum side of "
                        f"{min_side} px"
                    ),
                    note,
                )
            if suffix == "o" and gif:  # refused by the pipeline: not worth a download
                return url, GIF_ONLY, note
            return url, None, note
    return None, NO_URL, None


def large_instead(record: Mapping[str, Any] | None, fetched: str) -> str | None:
    """The Large URL of a photo whose bigger size (`fetched`: Large 1600, 2048 or the
    original) was refused, if search listed one; None otherwise."""
    if not record:
        return None
    bigger = {as_text(record.get(f"url_{suffix}")) for suffix in ("h", "k", "o")}
    large = as_text(record.get("url_l"))
    return large if large and large != fetched and fetched in bigger else None


def _gif_original(record: Mapping[str, Any]) -> bool:
    """Flickr keeps an original in its upload format: a GIF (animated, often) is refused
    by the imaging pipeline, while Flickr's own Medium sizes of it are JPEGs."""
    fmt = (as_text(record.get("originalformat")) or "").strip().lower()
    url = (as_text(record.get("url_o")) or "").split("?")[0].lower()
    return fmt == "gif" or url.endswith(".gif")


def _has_fallback(record: Mapping[str, Any]) -> bool:
    return any(as_text(record.get(f"url_{suffix}")) for suffix, _ in FALLBACKS)


def _big_first(record: Mapping[str, Any], max_side: int, gif: bool) -> tuple[tuple[str, str], ...]:
    """Large, Large 1600, Large 2048 and the Original offered, the smallest that reaches
    `max_side` first (less to download and decode), then the rest biggest first."""
    offered: list[tuple[int, str, str]] = []
    for suffix, name, edge in BIG:
        if as_text(record.get(f"url_{suffix}")):
            width, height = _dims(record, suffix)
            offered.append((max(width or 0, height or 0) or edge, suffix, name))
    if as_text(record.get("url_o")) and not (gif and offered):
        width, height = _dims(record, "o")
        offered.append((max(width or 0, height or 0) or 10**9, "o", "Original"))
    reaching = sorted(o for o in offered if o[0] >= max_side)
    short = sorted((o for o in offered if o[0] < max_side), reverse=True)
    return tuple((suffix, name) for _, suffix, name in reaching + short)


def _dims(record: Mapping[str, Any], suffix: str) -> tuple[int | None, int | None]:
    width, height = (
        positive(record.get(f"width_{suffix}")),
        positive(record.get(f"height_{suffix}")),
    )
    if suffix == "o":
        width = positive(record.get("o_width")) or width
        height = positive(record.get("o_height")) or height
    return width, height
