"""The emulated Flickr: photos generated from a seed, and their search index.

Upload dates spread over years and grow denser towards the present (as the seed
README observes), so a popular keyword over the full range exceeds the 4,000
cap while a rare one yields a few hundred. Some photos carry the real service's other
traits: a datetaken known only to the month, year or circa, a GIF original, an original its
owner hides, a description quoting a signed link; each photo offers only the sizes Flickr
would have made of it.
"""

from __future__ import annotations

import bisect
import calendar
import hashlib
import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from harvester.emulator.config import MEDIUMS_DATED, MEDIUMS_NONE, WorldSize

# (keyword, share of photos carrying it). "sunset" alone exceeds 4,000 photos.
SUBJECTS: tuple[tuple[str, float], ...] = (
    ("sunset", 0.34),
    ("beach", 0.14),
    ("street", 0.12),
    ("mountain", 0.09),
    ("bridge", 0.06),
    ("cathedral", 0.04),
    ("market", 0.035),
    ("forest", 0.03),
    ("harbour", 0.025),
    ("castle", 0.02),
    ("desert", 0.015),
    ("lighthouse", 0.012),
    ("waterfall", 0.01),
    ("glacier", 0.006),
)
PLACES: tuple[tuple[str, float, float], ...] = (
    ("paris", 48.8566, 2.3522),
    ("london", 51.5074, -0.1278),
    ("tokyo", 35.6762, 139.6503),
    ("newyork", 40.7128, -74.0060),
    ("rome", 41.9028, 12.4964),
    ("barcelona", 41.3874, 2.1686),
    ("sydney", -33.8688, 151.2093),
    ("capetown", -33.9249, 18.4241),
    ("reykjavik", 64.1466, -21.9426),
    ("buenosaires", -34.6037, -58.3816),
    ("tsukuba", 36.0835, 140.0764),
    ("berlin", 52.5200, 13.4050),
)
GENERIC_TAGS = ("travel", "nikon", "canon", "holiday", "city", "nature", "blue", "light")
ADJECTIVES = ("Golden", "Quiet", "Old", "Misty", "Evening", "Winter", "Summer", "Late")
FIRST = ("Ana", "Ben", "Chloe", "Dev", "Emil", "Fatima", "Goran", "Hana", "Ivo", "Jun")
LAST = ("Berg", "Hays", "Kowal", "Lind", "Mori", "Novak", "Ortiz", "Petit", "Quinn", "Sato")
FRAME_COLOURS = ((255, 255, 255), (0, 0, 0), (32, 32, 32), (200, 40, 40), (230, 225, 210))
ASPECTS = ((4, 3), (3, 2), (16, 9), (1, 1), (3, 4), (2, 3))
_TOKEN = re.compile(r"[a-z0-9]+")
# The sizes search hands out below the original: (extra, CDN suffix, longest side).
SIZES: tuple[tuple[str, str, int], ...] = (
    ("m", "m", 240),
    ("n", "n", 320),
    ("w", "w", 400),
    ("z", "z", 640),
    ("c", "c", 800),
    ("l", "b", 1024),
    ("h", "h", 1600),
    ("k", "k", 2048),
)
EDGES = {suffix: edge for _, suffix, edge in SIZES}
# misc.urls: from Large 1600 up each size has "a unique secret" and "photo owner can restrict"
# it (as the original): offered only with a public original, by a secret of its own.
OWN_SECRET = frozenset({"h", "k"})
# misc.urls: "Medium 800 ... photos only exist after March 1st 2012".
MEDIUM_800_SINCE = calendar.timegm((2012, 3, 1, 0, 0, 0))
COARSE_GRANULARITIES = (4, 6, 8)  # month, year, circa (misc.dates)


@dataclass(frozen=True)
class FlickrPhoto:
    """One photo as the emulated Flickr knows it (original dimensions upright)."""

    id: str
    owner: str
    ownername: str
    secret: str
    originalsecret: str
    server: str
    farm: int
    title: str
    description: str
    tags: tuple[str, ...]
    license: int
    dateupload: int
    datetaken: int
    taken_unknown: bool
    views: int
    lat: float | None
    lon: float | None
    accuracy: int
    o_width: int
    o_height: int
    originalformat: str
    has_large: bool
    original_public: bool
    frames: tuple[tuple[int, tuple[int, int, int]], ...]
    uniform_sky: bool
    cmyk: bool
    exif_orientation: int
    progressive: bool
    strings_style: bool
    # 0: datetaken to the second; 4 the month, 6 the year, 8 circa (datetaken truncated).
    taken_granularity: int = 0

    @property
    def has_geo(self) -> bool:
        return self.lat is not None

    @property
    def large_dims(self) -> tuple[int, int]:
        """Flickr's "Large" (suffix b): longest side 1024, never larger than the original."""
        return self.dims_at(1024)

    def dims_at(self, edge: int) -> tuple[int, int]:
        """The upright size of the photo shrunk to `edge` px on its longest side."""
        scale = min(1.0, edge / max(self.o_width, self.o_height))
        return max(1, round(self.o_width * scale)), max(1, round(self.o_height * scale))

    def sizes(self, mediums: str = MEDIUMS_DATED) -> dict[str, tuple[int, int]]:
        """CDN suffix -> (width, height) of every size below the original Flickr offers:
        Large only past 1024 px, a Medium or Small only where the original is bigger
        (sizes are made by shrinking), Medium 800 only since March 2012 when `dated`."""
        out: dict[str, tuple[int, int]] = {}
        longest = max(self.o_width, self.o_height)
        for _, suffix, edge in SIZES:
            if suffix == "b":
                if self.has_large:
                    out[suffix] = self.dims_at(edge)
                continue
            if mediums == MEDIUMS_NONE or longest <= edge:
                continue
            if suffix in OWN_SECRET and not self.original_public:
                continue
            dated = suffix == "c" or suffix in OWN_SECRET  # "only exist after March 1st 2012"
            if dated and mediums == MEDIUMS_DATED and self.dateupload < MEDIUM_800_SINCE:
                continue
            out[suffix] = self.dims_at(edge)
        return out

    def size_secret(self, suffix: str) -> str:
        """The secret in the URL of one size below the original: the photo's own up to
        Large 1024, a secret of each size's own from Large 1600 up."""
        if suffix not in OWN_SECRET:
            return self.secret
        return hashlib.blake2b(
            f"{self.originalsecret}:{suffix}".encode(), digest_size=5
        ).hexdigest()

    @property
    def tokens(self) -> frozenset[str]:
        text = f"{self.title} {self.description} {' '.join(self.tags)}".lower()
        return frozenset(_TOKEN.findall(text))


def _ri(rng: random.Random, lo: int, hi: int) -> int:
    """randrange(lo, hi) without its per-call overhead (generation runs ~300k of these)."""
    return lo + int(rng.random() * (hi - lo))


def _upload_years(rng: random.Random, years: tuple[int, int], n: int) -> list[int]:
    """Years weighted towards the present: uploads grow ~28% a year."""
    first, last = years
    span = list(range(first, last + 1))
    return rng.choices(span, [1.28 ** (y - first) for y in span], k=n)


def _year_start(year: int) -> int:
    return calendar.timegm((year, 1, 1, 0, 0, 0, 0, 0, 0))


def _owners(rng: random.Random, n: int) -> list[tuple[str, str]]:
    owners = []
    for i in range(n):
        nsid = f"{_ri(rng, 10_000_000, 199_999_999)}@N0{_ri(rng, 0, 9)}"
        name = f"{FIRST[i % len(FIRST)]} {LAST[(i // len(FIRST)) % len(LAST)]}"
        owners.append((nsid, name if i % 7 else name.lower().replace(" ", "_")))
    return owners


def _dims(rng: random.Random) -> tuple[int, int, bool, bool]:
    """Original size: large (has url_l), medium (url_o only) or small (< 500 short side)."""
    aw, ah = ASPECTS[_ri(rng, 0, len(ASPECTS))]
    roll = rng.random()
    if roll < 0.55:
        long_side = _ri(rng, 1600, 4001)
    elif roll < 0.85:
        long_side = _ri(rng, 760, 1025)
    else:
        long_side = _ri(rng, 320, 640)
    if aw >= ah:
        w, h = long_side, round(long_side * ah / aw)
    else:
        w, h = round(long_side * aw / ah), long_side
    has_large = max(w, h) > 1024
    original_public = not has_large or rng.random() < 0.8
    return w, h, has_large, original_public


def _frames(rng: random.Random, w: int, h: int) -> tuple[tuple[int, tuple[int, int, int]], ...]:
    if rng.random() >= 0.06:
        return ()
    unit = max(2, min(w, h) // 60)
    bands = _ri(rng, 1, 4)
    return tuple(
        (unit * _ri(rng, 1, 4), FRAME_COLOURS[_ri(rng, 0, len(FRAME_COLOURS))])
        for _ in range(bands)
    )


def _location(rng: random.Random, place: tuple[str, float, float]) -> tuple[float, float, int]:
    _, lat, lon = place
    spread = 0.02 if rng.random() < 0.7 else 0.4
    acc_roll = rng.random()
    accuracy = 16 if acc_roll < 0.6 else _ri(rng, 11, 16) if acc_roll < 0.85 else _ri(rng, 1, 11)
    return (
        round(lat + rng.gauss(0, spread), 6),
        round(lon + rng.gauss(0, spread), 6),
        accuracy,
    )


def _license(rng: random.Random) -> int:
    """All Rights Reserved mostly; then CC 2.0 (1-6), CC 4.0 (11-16: Flickr's default since
    June 2025, which owners also move older photos to) and the public-domain ones (7-10)."""
    roll = rng.random()
    if roll < 0.55:
        return 0
    if roll < 0.78:
        return _ri(rng, 1, 7)
    if roll < 0.9:
        return _ri(rng, 11, 17)
    return _ri(rng, 7, 11)


def _texts(rng: random.Random, subjects: list[str], place: str) -> tuple[str, str, tuple[str, ...]]:
    main = subjects[0]
    title = f"{ADJECTIVES[_ri(rng, 0, len(ADJECTIVES))]} {main} in {place.title()}"
    desc = "" if rng.random() < 0.4 else f"Taken on a walk; {' and '.join(subjects)} near {place}."
    tags = [*subjects, place]
    if rng.random() < 0.6:
        tags.append(GENERIC_TAGS[_ri(rng, 0, len(GENERIC_TAGS))])
    if len(subjects) > 1 and rng.random() < 0.3:
        # The keyword lives only in the description: text search must find it there.
        tags.remove(subjects[-1])
    return title, desc, tuple(tags)


def _pick_subjects(rng: random.Random) -> list[str]:
    picked = [name for name, share in SUBJECTS if rng.random() < share]
    if not picked:
        picked = [SUBJECTS[_ri(rng, 0, len(SUBJECTS))][0]]
        if picked[0] == "sunset":
            picked = ["street"]
    return picked[:3]


def generate_photos(seed: int, size: WorldSize) -> list[FlickrPhoto]:
    """All photos, sorted by upload time (ids increase with upload like Flickr's)."""
    rng = random.Random(seed * 1_000_003 + 11)
    owners = _owners(rng, 400)
    uploads = sorted(
        _year_start(year) + _ri(rng, 0, 365 * 86400)
        for year in _upload_years(rng, size.flickr_years, size.flickr_photos)
    )
    photos = []
    for i, uploaded in enumerate(uploads):
        photos.append(_traits(seed, _photo(rng, i, uploaded, owners, size), size))
    return photos


def _unit(seed: int, photo_id: str, trait: str) -> float:
    digest = hashlib.blake2b(f"{seed}:{photo_id}:{trait}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _traits(seed: int, p: FlickrPhoto, size: WorldSize) -> FlickrPhoto:
    """Coarse capture dates, GIF originals, hidden originals and linked descriptions, each
    drawn from the photo's own hash (not the world's generator), so their shares change no
    other photo."""
    changes: dict[str, Any] = {}
    u = _unit(seed, p.id, "granularity")
    for granularity, share in zip(COARSE_GRANULARITIES, size.flickr_taken_granularity, strict=True):
        if u < share and not p.taken_unknown:
            changes.update(
                taken_granularity=granularity, datetaken=coarse(p.datetaken, granularity)
            )
            break
        u -= share
    if _unit(seed, p.id, "gif") < size.flickr_gif_share:
        changes.update(originalformat="gif", cmyk=False, exif_orientation=1, progressive=False)
    hidden = _unit(seed, p.id, "hidden") < size.flickr_hidden_original_share
    if hidden and not p.has_large:
        changes.update(original_public=False)
    if _unit(seed, p.id, "link") < size.flickr_linked_description_share:
        changes.update(description=linked_description(seed, p))
    return replace(p, **changes) if changes else p


def linked_description(seed: int, p: FlickrPhoto) -> str:
    """The photo's description with a signed link its owner pasted, as Flickr sends one: an
    HTML anchor, its `&` escaped, the token in the query."""
    token = hashlib.blake2b(f"{seed}:{p.id}:token".encode(), digest_size=8).hexdigest()
    link = f"https://prints.example.com/p/{p.id}?ref=flickr&amp;token={token}"
    anchor = f'<a href="{link}" rel="nofollow">prints.example.com/p/{p.id}</a>'
    return f"{p.description} Prints: {anchor}".lstrip()


def coarse(ts: int, granularity: int) -> int:
    """A taken time cut to its granularity: the first second of its month or year."""
    when = datetime.fromtimestamp(ts, UTC)
    month = when.month if granularity == 4 else 1
    return calendar.timegm((when.year, month, 1, 0, 0, 0))


def _photo(
    rng: random.Random, i: int, uploaded: int, owners: list[tuple[str, str]], size: WorldSize
) -> FlickrPhoto:
    owner, ownername = owners[_ri(rng, 0, len(owners))]
    place = PLACES[_ri(rng, 0, len(PLACES))]
    subjects = _pick_subjects(rng)
    title, desc, tags = _texts(rng, subjects, place[0])
    w, h, has_large, original_public = _dims(rng)
    geo = rng.random() >= size.flickr_no_geo_fraction
    lat, lon, accuracy = _location(rng, place) if geo else (None, None, 0)
    png = not has_large and rng.random() < 0.06
    taken_unknown = rng.random() < 0.03
    return FlickrPhoto(
        id=str(3_000_000_000 + i * 4096 + _ri(rng, 0, 4096)),
        owner=owner,
        ownername=ownername,
        secret=f"{rng.getrandbits(40):010x}",
        originalsecret=f"{rng.getrandbits(40):010x}",
        server=str(rng.choice((65535, 7372, 8123, 4567, 3842, 2890))),
        farm=rng.choice((66, 8, 5, 3)),
        title=title,
        description=desc,
        tags=tags,
        license=_license(rng),
        dateupload=uploaded,
        datetaken=uploaded if taken_unknown else uploaded - _ri(rng, 0, 3 * 365 * 86400),
        taken_unknown=taken_unknown,
        views=int(rng.paretovariate(1.2) * 20),
        lat=lat,
        lon=lon,
        accuracy=accuracy,
        o_width=w,
        o_height=h,
        originalformat="png" if png else "jpg",
        has_large=has_large,
        original_public=original_public,
        frames=_frames(rng, w, h),
        uniform_sky=rng.random() < 0.05,
        cmyk=not png and rng.random() < 0.03,
        exif_orientation=rng.choice((6, 8, 3)) if not png and rng.random() < 0.04 else 1,
        progressive=not png and rng.random() < 0.05,
        strings_style=rng.random() < 0.5,
    )


def mysql_datetime(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def parse_flickr_date(value: str) -> int:
    """Unix seconds or a MySQL datetime (date alone allowed), both accepted by Flickr."""
    value = value.strip()
    if re.fullmatch(r"-?\d+(\.\d+)?", value):
        return int(float(value))
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            return calendar.timegm(datetime.strptime(value, fmt).timetuple())
        except ValueError:
            continue
    raise ValueError(value)


@dataclass(frozen=True)
class SearchQuery:
    """The filters of one flickr.photos.search call (paging excluded)."""

    text: str | None = None
    tags: tuple[str, ...] = ()
    tag_mode_all: bool = False
    bbox: tuple[float, float, float, float] | None = None
    has_geo: bool | None = None
    accuracy: int | None = None
    min_upload: int | None = None
    max_upload: int | None = None
    min_taken: int | None = None
    max_taken: int | None = None
    licenses: frozenset[int] | None = None
    sort: str = "date-posted-desc"


class FlickrIndex:
    """Token and upload-time indexes so a search costs its matches, not the world."""

    def __init__(self, photos: list[FlickrPhoto]) -> None:
        self.photos = photos
        self.uploads = [p.dateupload for p in photos]
        self.by_token: dict[str, list[int]] = {}
        self.by_tag: dict[str, list[int]] = {}
        for i, photo in enumerate(photos):
            for token in photo.tokens:
                self.by_token.setdefault(token, []).append(i)
            for tag in photo.tags:
                self.by_tag.setdefault(tag, []).append(i)

    def _candidates(self, q: SearchQuery) -> list[int]:
        lo = 0 if q.min_upload is None else bisect.bisect_left(self.uploads, q.min_upload)
        hi = len(self.uploads)
        if q.max_upload is not None:
            hi = bisect.bisect_right(self.uploads, q.max_upload)
        sets: list[set[int]] = []
        if q.text:
            # Negative terms ("-word") are ignored, as the real search largely does.
            words = [w for w in q.text.lower().split() if not w.startswith("-")]
            for word in words:
                tokens = _TOKEN.findall(word)
                for token in tokens:
                    sets.append(set(self.by_token.get(token, ())))
        if q.tags:
            tag_sets = [set(self.by_tag.get(t, ())) for t in q.tags]
            if q.tag_mode_all:
                sets.extend(tag_sets)
            else:
                sets.append(set().union(*tag_sets))
        if not sets:
            return list(range(lo, hi))
        found = set.intersection(*sets)
        return sorted(i for i in found if lo <= i < hi)

    def search(self, q: SearchQuery) -> list[FlickrPhoto]:
        """Every matching photo in the order `sort` asks for (no cap, no duplicates)."""
        out = [self.photos[i] for i in self._candidates(q)]
        out = [p for p in out if _matches(p, q)]
        return _sort(out, q)


def _matches(p: FlickrPhoto, q: SearchQuery) -> bool:
    if q.has_geo is not None and p.has_geo != q.has_geo:
        return False
    if q.bbox is not None or q.accuracy is not None:
        if p.lat is None or p.lon is None:
            return False
        if q.accuracy is not None and p.accuracy < q.accuracy:
            return False
        if q.bbox is not None:
            minlon, minlat, maxlon, maxlat = q.bbox
            if not (minlon <= p.lon <= maxlon and minlat <= p.lat <= maxlat):
                return False
    if q.min_taken is not None and p.datetaken < q.min_taken:
        return False
    if q.max_taken is not None and p.datetaken > q.max_taken:
        return False
    return q.licenses is None or p.license in q.licenses


def _relevance(p: FlickrPhoto, q: SearchQuery) -> float:
    return math.sin(int(p.id) * 0.618 + len(q.text or "")) + p.views / 1e6


def _sort(photos: list[FlickrPhoto], q: SearchQuery) -> list[FlickrPhoto]:
    keys: dict[str, tuple[Callable[[FlickrPhoto], int], bool]] = {
        "date-posted-asc": (lambda p: p.dateupload, False),
        "date-posted-desc": (lambda p: p.dateupload, True),
        "date-taken-asc": (lambda p: p.datetaken, False),
        "date-taken-desc": (lambda p: p.datetaken, True),
        "interestingness-desc": (lambda p: p.views, True),
        "interestingness-asc": (lambda p: p.views, False),
    }
    if q.sort == "relevance":
        return sorted(photos, key=lambda p: _relevance(p, q), reverse=True)
    key, reverse = keys.get(q.sort, keys["date-posted-desc"])
    return sorted(photos, key=lambda p: (key(p), int(p.id)), reverse=reverse)
