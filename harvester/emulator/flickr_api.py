"""Flickr REST at /services/rest/: photos.search and photos.licenses.getInfo.

Faithful to the real service's warts: HTTP 200 with `stat: fail` for errors,
numbers sometimes encoded as strings (`total` always), the 4,000-result cap, results that
start repeating photos already returned past roughly the 1,500th of a search, a page past
the last answered with the last one again, only the sizes a photo really has, and, when
asked for, a blank `total` or an empty page where photos are.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import replace
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from aiohttp import web

from harvester.emulator.config import MEDIUMS_DATED, Warts
from harvester.emulator.flickr_world import (
    SIZES,
    FlickrIndex,
    FlickrPhoto,
    SearchQuery,
    mysql_datetime,
    parse_flickr_date,
)
from harvester.emulator.stats import mark

RESULT_CAP = 4000
DUPLICATES_FROM = 1500
DUPLICATE_SHARE = 0.15
DEFAULT_PER_PAGE = 100
MAX_PER_PAGE = 500
MAX_PER_PAGE_GEO = 250
# flickr.photos.search: a geo query with no limiting agent sees only the last 12 hours.
GEO_RECENT_S = 12 * 3600
GEO_PARAMS = ("bbox", "lat", "lon", "has_geo", "woe_id", "place_id")

# What flickr.photos.licenses.getInfo answers, in its order (not the ids'): since June 2025
# the CC 4.0 suite as 11-16 beside the 2.0 one (1-6), every CC licence named as CC names it,
# and All Rights Reserved with a link to Flickr's help (as recorded on 19 June 2025).
_CC = "https://creativecommons.org/licenses"
LICENSES: tuple[tuple[int, str, str], ...] = (
    (
        0,
        "All Rights Reserved",
        "https://www.flickrhelp.com/hc/en-us/articles/"
        "10710266545556-Using-Flickr-images-shared-by-other-members",
    ),
    (4, "CC BY 2.0", f"{_CC}/by/2.0/"),
    (6, "CC BY-ND 2.0", f"{_CC}/by-nd/2.0/"),
    (3, "CC BY-NC-ND 2.0", f"{_CC}/by-nc-nd/2.0/"),
    (2, "CC BY-NC 2.0", f"{_CC}/by-nc/2.0/"),
    (1, "CC BY-NC-SA 2.0", f"{_CC}/by-nc-sa/2.0/"),
    (5, "CC BY-SA 2.0", f"{_CC}/by-sa/2.0/"),
    (7, "No known copyright restrictions", "https://www.flickr.com/commons/usage/"),
    (8, "United States Government Work", "https://www.usa.gov/government-copyright"),
    (9, "Public Domain Dedication (CC0)", "https://creativecommons.org/publicdomain/zero/1.0/"),
    (10, "Public Domain Mark", "https://creativecommons.org/publicdomain/mark/1.0/"),
    (11, "CC BY 4.0", f"{_CC}/by/4.0/"),
    (12, "CC BY-SA 4.0", f"{_CC}/by-sa/4.0/"),
    (13, "CC BY-ND 4.0", f"{_CC}/by-nd/4.0/"),
    (14, "CC BY-NC 4.0", f"{_CC}/by-nc/4.0/"),
    (15, "CC BY-NC-SA 4.0", f"{_CC}/by-nc-sa/4.0/"),
    (16, "CC BY-NC-ND 4.0", f"{_CC}/by-nc-nd/4.0/"),
)


class FlickrFail(Exception):
    """A `stat: fail` answer (served with HTTP 200, as Flickr does)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def render(params: Mapping[str, str], payload: dict[str, Any]) -> web.Response:
    """JSON, JSONP (`jsonFlickrApi(...)` unless nojsoncallback=1) or Flickr's XML."""
    fmt = params.get("format", "rest")
    if fmt == "json":
        body = json.dumps(payload, separators=(",", ":"))
        if params.get("nojsoncallback") == "1":
            return web.Response(text=body, content_type="application/json")
        callback = params.get("jsoncallback") or "jsonFlickrApi"
        return web.Response(text=f"{callback}({body})", content_type="text/javascript")
    if payload.get("stat") == "fail":
        attrs = {"code": payload["code"], "msg": payload["message"]}
        xml = f'<rsp stat="fail"><err{_attrs(attrs)} /></rsp>'
    else:
        inner = "".join(_xml(name, value) for name, value in payload.items() if name != "stat")
        xml = f'<rsp stat="ok">{inner}</rsp>'
    return web.Response(
        text=f'<?xml version="1.0" encoding="utf-8" ?>\n{xml}\n', content_type="text/xml"
    )


def _attrs(values: Mapping[str, Any]) -> str:
    return "".join(f" {k}={quoteattr(str(v))}" for k, v in values.items())


def _xml(name: str, value: Any) -> str:
    """Flickr's XML: scalars as attributes, `_content` as text, lists as repeated children."""
    if isinstance(value, list):
        return "".join(_xml(name, item) for item in value)
    if not isinstance(value, dict):
        return f"<{name}>{escape(str(value))}</{name}>"
    scalars = {k: v for k, v in value.items() if not isinstance(v, dict | list) and k != "_content"}
    children = "".join(_xml(k, v) for k, v in value.items() if isinstance(v, dict | list))
    text = escape(str(value.get("_content", "")))
    if not children and not text:
        return f"<{name}{_attrs(scalars)} />"
    return f"<{name}{_attrs(scalars)}>{text}{children}</{name}>"


def fail_payload(code: int, message: str) -> dict[str, Any]:
    return {"stat": "fail", "code": code, "message": message}


def licenses_payload() -> dict[str, Any]:
    rows = [{"id": i, "name": name, "url": url} for i, name, url in LICENSES]
    return {"licenses": {"license": rows}, "stat": "ok"}


def _int(params: Mapping[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(float(raw))
    except ValueError:
        return None


def _date(params: Mapping[str, str], name: str) -> int | None:
    raw = params.get(name)
    if not raw:
        return None
    try:
        return parse_flickr_date(raw)
    except ValueError:
        return None


def parse_query(params: Mapping[str, str]) -> SearchQuery:
    bbox = None
    if params.get("bbox"):
        try:
            parts = [float(x) for x in params["bbox"].split(",")]
        except ValueError as exc:
            raise FlickrFail(3, "Invalid bbox") from exc
        if len(parts) != 4:
            raise FlickrFail(3, "Invalid bbox")
        bbox = (parts[0], parts[1], parts[2], parts[3])
    has_geo_raw = params.get("has_geo")
    licenses = params.get("license")
    tags = tuple(t.strip().lower() for t in params.get("tags", "").split(",") if t.strip())
    query = SearchQuery(
        text=params.get("text") or None,
        tags=tags,
        tag_mode_all=params.get("tag_mode") == "all",
        bbox=bbox,
        has_geo=None if has_geo_raw in (None, "") else has_geo_raw not in ("0", "false"),
        accuracy=_int(params, "accuracy"),
        min_upload=_date(params, "min_upload_date"),
        max_upload=_date(params, "max_upload_date"),
        min_taken=_date(params, "min_taken_date"),
        max_taken=_date(params, "max_taken_date"),
        licenses=frozenset(int(x) for x in licenses.split(",") if x.strip().isdigit())
        if licenses
        else None,
        sort=params.get("sort") or "date-posted-desc",
    )
    limiting = (
        query.text,
        query.tags,
        query.bbox,
        query.min_upload,
        query.max_upload,
        query.min_taken,
        query.max_taken,
    )
    if not any(x for x in limiting if x is not None):
        raise FlickrFail(
            3,
            "Parameterless searches have been disabled. "
            "Please use flickr.photos.getRecent instead.",
        )
    return query


def _refuse_abused_urls(params: Mapping[str, str], hosts: frozenset[str]) -> None:
    """Code 116 when an argument names a host Flickr holds as used for abuse (with or
    without a scheme, any subdomain, any case), as its documented error codes say."""
    if not hosts:
        return
    for value in params.values():
        for name in _HOSTS.findall(value.lower()):
            if any(name == h or name.endswith(f".{h}") for h in hosts):
                raise FlickrFail(116, "Bad URL found")


# A host name as written in free text: labels joined by dots, after a scheme or not.
_HOSTS = re.compile(r"(?<![\w.-])(?:[a-z][a-z0-9+.-]*://)?((?:[a-z0-9-]+\.)+[a-z]{2,})")


def _unit(*parts: object) -> float:
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class SearchEngine:
    """Runs searches and pages them the way Flickr does, caching recent result lists."""

    def __init__(
        self,
        index: FlickrIndex,
        seed: int,
        warts: Warts | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.index = index
        self.seed = seed
        self.warts = warts or Warts()
        self.now = now
        self._served: OrderedDict[SearchQuery, tuple[int, list[FlickrPhoto]]] = OrderedDict()
        self._asked: set[Hashable] = set()  # first asks seen, while a flaky wart is on

    def served(self, q: SearchQuery) -> tuple[int, list[FlickrPhoto]]:
        """(true total, the at most 4,000 photos one search hands out, duplicates included)."""
        hit = self._served.get(q)
        if hit is not None:
            self._served.move_to_end(q)
            return hit
        truth = self.index.search(q)
        out = truth[:RESULT_CAP]
        start = DUPLICATES_FROM + int(_unit(self.seed, q, "start") * 100) - 50
        for pos in range(max(start, 1), len(out)):
            if _unit(self.seed, q, pos) < DUPLICATE_SHARE:
                out[pos] = out[int(_unit(self.seed, q, pos, "j") * start)]
        result = (len(truth), out)
        self._served[q] = result
        if len(self._served) > 64:
            self._served.popitem(last=False)
        return result

    def limited(self, params: Mapping[str, str], q: SearchQuery) -> SearchQuery:
        """The query as Flickr runs it: a geo query that no tag or minimum date limits
        (free text and a maximum date alone are not documented as limits) is cut to the
        photos uploaded in the last 12 hours. A minimum date of 0 (the epoch) limits
        nothing: Flickr's PHP reads "0" as no value given."""
        geo = any(params.get(name) for name in GEO_PARAMS)
        if not self.warts.flickr_geo_recent_only or not geo:
            return q
        if q.tags or q.min_upload or q.min_taken:
            return q
        return replace(q, min_upload=int(self.now()) - GEO_RECENT_S)

    def page(self, params: Mapping[str, str], base_url: str) -> dict[str, Any]:
        _refuse_abused_urls(params, self.warts.flickr_abused_hosts)
        q = self.limited(params, parse_query(params))
        # "Geo (or bounding box) queries" page 250 at most: any geo argument makes one, as
        # for the limiting-agent rule (has_geo too, in the strictest reading).
        geo = any(params.get(name) for name in GEO_PARAMS)
        cap = MAX_PER_PAGE_GEO if geo else MAX_PER_PAGE
        per_page = min(max(_int(params, "per_page") or DEFAULT_PER_PAGE, 1), cap)
        page = max(_int(params, "page") or 1, 1)
        total, served = self.served(q)
        announced = total + self.warts.flickr_total_overcount if total else 0
        pages = math.ceil(announced / per_page) if announced else 0
        counted: int | str = str(announced) if self.warts.flickr_total_as_string else announced
        if self._first_ask_fails(("blank", q), self.warts.flickr_blank_total_share):
            pages, counted, served = 0, "", []  # stat "ok": only the blank total tells
        start = (page - 1) * per_page
        past_last = page > pages and self.warts.flickr_past_last_repeats
        if start >= len(served) and served and (past_last or total > RESULT_CAP):
            # Past the last page (or the cap) Flickr keeps answering with its last one;
            # between the listed pages and an overcounted last one, with none.
            start = ((len(served) - 1) // per_page) * per_page
        chunk = served[start : start + per_page]
        if page < pages and self._first_ask_fails(
            ("empty", q, page, per_page), self.warts.flickr_empty_page_share
        ):
            chunk = []
        extras = {e.strip() for e in params.get("extras", "").split(",") if e.strip()}
        mediums = self.warts.flickr_mediums
        return {
            "photos": {
                "page": page,
                "pages": pages,
                "perpage": per_page,
                "total": counted,
                "photo": [photo_json(p, extras, base_url, mediums) for p in chunk],
            },
            "stat": "ok",
        }

    def _first_ask_fails(self, key: Hashable, share: float) -> bool:
        """True on the first ask of `key` when its seeded coin falls under `share`."""
        if share <= 0 or key in self._asked:
            return False
        self._asked.add(key)
        return _unit(self.seed, key) < share


def _num(p: FlickrPhoto, value: int | float) -> int | float | str:
    """The real API encodes the same field as a number or a string, depending on the path."""
    return str(value) if p.strings_style else value


def photo_json(
    p: FlickrPhoto, extras: set[str], base_url: str, mediums: str = MEDIUMS_DATED
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": p.id,
        "owner": p.owner,
        "secret": p.secret,
        "server": p.server,
        "farm": p.farm,
        "title": p.title,
        "ispublic": 1,
        "isfriend": 0,
        "isfamily": 0,
    }
    if "description" in extras:
        out["description"] = {"_content": p.description}
    if "license" in extras:
        out["license"] = str(p.license)
    if "date_upload" in extras:
        out["dateupload"] = str(p.dateupload)
    if "date_taken" in extras:
        out["datetaken"] = taken_text(p)
        out["datetakengranularity"] = _num(p, p.taken_granularity)
        out["datetakenunknown"] = "1" if p.taken_unknown else "0"
    if "owner_name" in extras:
        out["ownername"] = p.ownername
    if "original_format" in extras and p.original_public:
        out["originalsecret"] = p.originalsecret
        out["originalformat"] = p.originalformat
    if "o_dims" in extras and p.original_public:
        out["o_width"] = str(p.o_width)
        out["o_height"] = str(p.o_height)
    if "views" in extras:
        out["views"] = str(p.views)
    if "tags" in extras:
        out["tags"] = " ".join(p.tags)
    if "geo" in extras:
        out.update(_geo(p))
    out.update(_sizes(p, extras, base_url, mediums))
    if "url_o" in extras and p.original_public:
        out["url_o"] = (
            f"{base_url}/cdn/flickr/{p.server}/{p.id}_{p.originalsecret}_o.{p.originalformat}"
        )
        out["height_o"] = _num(p, p.o_height)
        out["width_o"] = _num(p, p.o_width)
    return out


def _sizes(p: FlickrPhoto, extras: set[str], base_url: str, mediums: str) -> dict[str, Any]:
    """url_X, width_X and height_X of each size asked for that the photo has."""
    out: dict[str, Any] = {}
    offered = p.sizes(mediums)
    for extra, suffix, _ in SIZES:
        if f"url_{extra}" not in extras or suffix not in offered:
            continue
        w, h = offered[suffix]
        secret = p.size_secret(suffix)
        out[f"url_{extra}"] = f"{base_url}/cdn/flickr/{p.server}/{p.id}_{secret}_{suffix}.jpg"
        out[f"height_{extra}"] = _num(p, h)
        out[f"width_{extra}"] = _num(p, w)
    return out


def taken_text(p: FlickrPhoto) -> str:
    """datetaken as Flickr writes it; a month-only date now and then with a zero day
    (`2008-05-00 00:00:00`), as older records have it, instead of the first of the month."""
    text = mysql_datetime(p.datetaken)
    if p.taken_granularity == 4 and int(p.id) % 2:
        return text[:8] + "00" + text[10:]
    return text


def _geo(p: FlickrPhoto) -> dict[str, Any]:
    if p.lat is None or p.lon is None:
        # Not geotagged: zeros, not absence — a client must not read this as (0, 0).
        return {"latitude": 0, "longitude": 0, "accuracy": 0, "context": 0}
    return {
        "latitude": _num(p, p.lat),
        "longitude": _num(p, p.lon),
        "accuracy": str(p.accuracy),
        "context": 0,
        "place_id": hashlib.md5(p.tags[-1].encode()).hexdigest()[:18],
        "woeid": str(int(p.id) % 9_000_000 + 100_000),
        "geo_is_public": 1,
        "geo_is_contact": 0,
        "geo_is_friend": 0,
        "geo_is_family": 0,
    }


class FlickrRest:
    """The /services/rest/ endpoint: key check, then method dispatch."""

    def __init__(self, engine: SearchEngine, keys: frozenset[str]) -> None:
        self.engine = engine
        self.keys = keys

    async def handle(self, request: web.Request) -> web.Response:
        params = request.query
        key = params.get("api_key", "")
        if not key or key not in self.keys:
            mark(request, "invalid_key")
            reason = "Key not found" if key else "Key has invalid format"
            return render(params, fail_payload(100, f"Invalid API Key ({reason})"))
        method = params.get("method", "")
        try:
            if method == "flickr.photos.search":
                base = f"{request.scheme}://{request.host}"
                return render(params, self.engine.page(params, base))
            if method == "flickr.photos.licenses.getInfo":
                return render(params, licenses_payload())
            if method == "flickr.test.echo":
                return render(params, {"method": {"_content": method}, "stat": "ok"})
        except FlickrFail as exc:
            return render(params, fail_payload(exc.code, exc.message))
        return render(params, fail_payload(112, f'Method "{method}" not found'))
