"""Emulator settings: world size, fault knobs, the real services' warts and per-key limits.

Kept as plain dataclasses (no pydantic) because the emulator plays the outside
world and must not depend on the harvester's own configuration machinery. Every
wart defaults to the strict side (how the real services behave at their worst);
a knob makes it lenient where a test needs the well-behaved world.
"""

from __future__ import annotations

from dataclasses import dataclass, field

API = "api"
CDN = "cdn"
# The credentials an emulator accepts unless told otherwise: tests and `make demo` use
# these, and any other key or token is refused (code 100 / a 401 with code 190).
FLICKR_KEY = "0e1b2a3c4d5e6f708192a3b4c5d6e7f8"
MAPILLARY_TOKEN = "MLY|4242424242424242|0e1b2a3c4d5e6f708192a3b4c5d6e7f8"
# How Mapillary reads its bbox limit: any side >= 0.01 degree refused ("per_side", the
# stricter reading several clients tile for) or only an area over 0.01 sq degree ("area").
PER_SIDE = "per_side"
AREA = "area"
BBOX_RULES = (PER_SIDE, AREA)
OUTAGE_SERVICES = ("flickr", "mapillary", "cdn")
# How Flickr's CDN answers for a photo deleted since search indexed it: a redirect to its
# photo_unavailable placeholder (a 200 picture: the hardest to tell), that placeholder sent
# at the photo's own URL with a 200 ("inline"), or a 404 or 410.
PLACEHOLDER = "placeholder"
INLINE = "inline"
FLICKR_DELETED_ANSWERS = (PLACEHOLDER, INLINE, "404", "410")
# How Mapillary's entity endpoint answers for a deleted image: a Graph error (HTTP 400, code
# 100, subcode 33), an HTTP 404 Graph error, or a 200 holding the id and none of the fields.
GRAPH_ERROR = "error"
BARE = "bare"
MAPILLARY_DELETED_ANSWERS = (GRAPH_ERROR, "404", BARE)
# Which Medium and Small sizes (url_m 240 ... url_z 640, url_c 800) Flickr's search hands out:
# "dated" as the real one (Medium 800 exists only for photos uploaded since 1 March 2012),
# "all" for every photo, or "none" (only Large and the original).
MEDIUMS_DATED = "dated"
MEDIUMS_ALL = "all"
MEDIUMS_NONE = "none"
FLICKR_MEDIUMS = (MEDIUMS_DATED, MEDIUMS_ALL, MEDIUMS_NONE)


@dataclass
class Faults:
    """Misbehaviour injected into responses, scoped to the API and/or the CDN."""

    latency_ms: float = 0
    # With latency_ms: an answer waits no longer once this many requests have been in flight
    # at once at its endpoint (0: always the whole latency). Calls made together then get
    # through at once, calls made one after another each wait it all, however fast the
    # machine: concurrency shows in the stats' max_in_flight, not in timings.
    overlap: int = 0
    error_5xx_rate: float = 0
    rate_429: float = 0
    retry_after_s: float = 1.0
    # Retry-After as an HTTP-date (the emulator's clock plus the wait, whole seconds up) rather
    # than delay-seconds: RFC 9110 allows either, and CDNs and proxies send dates.
    retry_after_date: bool = False
    reset_rate: float = 0
    truncate_rate: float = 0
    # Share of answers whose body stops short of its Content-Length with the connection then
    # held open, no FIN, until the client gives up (a stalled CDN edge): unlike a truncated
    # one, nothing but the client's own timers ends it.
    stall_rate: float = 0
    # Share of CDN answers that are a 206 with only the first part of the picture and a
    # Content-Range saying so, though no Range was asked for (a misbehaving edge cache).
    partial_rate: float = 0
    # Share of Mapillary API answers that are Graph rate-limit errors in the body
    # (code 4, 17 or 613) sent with a 400 or 403, as Graph-style APIs do.
    body_rate_limit_rate: float = 0
    # The codes those carry, in turn by the coin: Graph also throttles with 32, 341
    # ("Application limit reached"), 368 ("Temporarily blocked") and the business use case
    # limits 80000-80014; and may mark an error of any code `"is_transient": true`.
    body_rate_limit_codes: tuple[int, ...] = (4, 17, 613)
    body_rate_limit_transient: bool = False
    # Share of API answers that are an HTML page sent with a 200: a captive portal's, a
    # proxy's or a maintenance page standing in for the API's JSON.
    html_page_rate: float = 0
    # Share of answers sent gzip-encoded with the gzip stream cut short or its CRC trailer
    # wrong, under a Content-Length true to the bytes sent (a broken proxy's or edge's
    # recompression): nothing is amiss at the HTTP level, only in the stream.
    bad_gzip_rate: float = 0
    scope: frozenset[str] = frozenset({API, CDN})

    def __post_init__(self) -> None:
        if not self.body_rate_limit_codes:
            raise ValueError("body_rate_limit_codes needs at least one code")


@dataclass(frozen=True)
class Outage:
    """A service down for `duration_s` emulator seconds, `start_s` after its first request.

    Flickr's API answers code 105 or HTTP 503 while down, Mapillary's a 500/503 (Graph
    code 2 in the body), the CDN a 503.
    """

    service: str
    start_s: float
    duration_s: float

    def __post_init__(self) -> None:
        if self.service not in OUTAGE_SERVICES:
            raise ValueError(f"outage service must be one of {OUTAGE_SERVICES}")
        if self.start_s < 0 or self.duration_s <= 0:
            raise ValueError("an outage starts at >= 0 s and lasts > 0 s")

    @classmethod
    def parse(cls, text: str) -> Outage:
        """`SERVICE:START:DURATION` in seconds, e.g. `flickr:5:180`."""
        try:
            service, start, duration = text.split(":")
            return cls(service.strip(), float(start), float(duration))
        except ValueError as exc:
            raise ValueError(f"an outage is SERVICE:START_S:DURATION_S, got {text!r}") from exc


@dataclass(frozen=True)
class Warts:
    """The real services' known misbehaviour, each on its strict side by default."""

    # Share of Flickr photos and Mapillary images deleted since they were indexed: search
    # still lists them, Flickr's CDN redirects them to photo_unavailable.png and
    # Mapillary's entity and multi-get refuse their ids.
    deleted_share: float = 0.0
    flickr_deleted_answer: str = PLACEHOLDER
    # Where that redirect points: None, the emulator's own copy; else a URL on another host,
    # as the real one's is (s.yimg.com/pw/images/..., l.yimg.com/g/images/... before).
    flickr_placeholder_url: str | None = None
    # Share of Flickr owners on free accounts, whose sizes over 1024 px (Large 1600, 2048,
    # the original) the CDN refuses with a 403 since 15 May 2025 (Flickr's "Original & Large
    # Size Download Limitations on Free Accounts"); search still lists their URLs. Which
    # accounts are free is undocumented per photo: 0 by default, a knob for the rule.
    flickr_free_account_share: float = 0.0
    mapillary_deleted: frozenset[str] = frozenset()
    mapillary_deleted_entity: str = GRAPH_ERROR
    bbox_rule: str = PER_SIDE
    # The number in that limit: each side under this many degrees, or an area under this many
    # square degrees. Mapillary documents 0.01; a smaller one plays a stricter service.
    bbox_limit: float = 0.01
    # Image fields the API no longer serves (Graph retires fields between versions): asked
    # for, they are refused as nonexisting (HTTP 400, code 100), the box's size aside.
    mapillary_retired_fields: frozenset[str] = frozenset()
    flickr_429_html: bool = True  # Flickr's 429 is an HTML page, not JSON
    # Mapillary's own rate limit as a Graph error in the body (code 613, HTTP 400)
    # rather than a bare 429.
    mapillary_limit_in_body: bool = True
    multiget_drops_unknown: bool = False  # real `?ids=` fails on one unknown id
    # Graph's `?ids=` multi-get, which Mapillary's own API documentation does not list: off,
    # the root answers "Unsupported get request" (HTTP 400, code 100) as for any unknown edge.
    mapillary_multiget: bool = True
    # A bbox search over a box holding more images than this answers HTTP 500, Graph
    # code 1 "Please reduce the amount of data you're asking for", whatever its limit or
    # fields, as the real search does in city centres. None: the box's size decides alone.
    dense_refusal_above: int | None = 1500
    # A bbox search over a box holding more images than this times out at the gateway: an
    # HTTP 504 page, as a query too heavy for the time allowed meets. None: never.
    dense_timeout_above: int | None = None
    # Graph's paged collections: `images` and `image_ids` answer at most this many items a
    # page, each page but the last with `paging.cursors.after` and a `paging.next` URL that
    # holds the caller's token as `access_token=`, as Graph writes it. None: one page.
    mapillary_page_size: int | None = None
    # Share of reconstructed images whose computed_geometry is wildly off, hundreds of metres
    # to kilometres from the camera's own GPS fix (a structure-from-motion merge gone wrong,
    # as real ones are now and then), with a computed_compass_angle turned a quarter round.
    # The camera's geometry and compass_angle stay true. 0: every reconstruction is sound.
    mapillary_wild_computed_share: float = 0.03
    outages: tuple[Outage, ...] = ()
    # The stat=fail codes Flickr's API says "down" with, taken in turn: 105 (documented, HTTP
    # 200), 201 (HTTP 400) and 0, both "Sorry, the Flickr API service is not currently
    # available." as clients meet them. Half of a Flickr outage's answers are these.
    flickr_down_codes: tuple[int, ...] = (105, 201, 0)
    flickr_mediums: str = MEDIUMS_DATED
    # Real JSON says `"total":"79837"` (a string; `"0"` when nothing matched) while page,
    # pages and perpage are numbers.
    flickr_total_as_string: bool = True
    # A page past the last one answers with the last page's photos again, not an empty page:
    # a client that pages until it sees nothing never stops.
    flickr_past_last_repeats: bool = True
    # A geo query (bbox, lat/lon, has_geo, woe_id, place_id) with no limiting agent (a tag,
    # min_upload_date or min_taken_date) answers only photos uploaded in the last 12 hours.
    flickr_geo_recent_only: bool = True
    # flickr.photos.search now and then answers stat "ok" with `"total": ""`, pages 0 and no
    # photos for a query that matches (flickrapi issue #109, its users retry), or with no
    # photos on a page before the last it announces. These are the shares of queries whose
    # first search, and of such pages whose first ask, is answered so (1: every one); a
    # retry gets the true answer. Off by default as fault rates are: on, each costs a window
    # a retry, and the queue's back-off, in every harvest the emulator serves.
    flickr_blank_total_share: float = 0.0
    flickr_empty_page_share: float = 0.0
    # A search's total counts this many photos more than its pages list (photos made private
    # or removed since they were counted), every time: the pages past the listed ones, up to
    # the last it announces, answer no photos. 0: the total is exact.
    flickr_total_overcount: int = 0
    # Hosts Flickr holds as used for abuse: a call whose arguments (a search's free text) name
    # one is refused with code 116, "Bad URL found", every time it is asked.
    flickr_abused_hosts: frozenset[str] = frozenset({"spam.example", "abused.example"})

    def __post_init__(self) -> None:
        self._check_flickr()
        if self.mapillary_deleted_entity not in MAPILLARY_DELETED_ANSWERS:
            raise ValueError(f"mapillary_deleted_entity must be one of {MAPILLARY_DELETED_ANSWERS}")
        if self.bbox_rule not in BBOX_RULES:
            raise ValueError(f"bbox_rule must be one of {BBOX_RULES}")
        if not self.bbox_limit > 0:
            raise ValueError("bbox_limit must be positive")
        if not 0 <= self.mapillary_wild_computed_share <= 1:
            raise ValueError("mapillary_wild_computed_share must be in [0, 1]")
        if not 0 <= self.deleted_share < 1:
            raise ValueError("deleted_share must be in [0, 1)")
        if self.dense_refusal_above is not None and self.dense_refusal_above < 1:
            raise ValueError("dense_refusal_above must be >= 1 (or None: never)")
        if self.dense_timeout_above is not None and self.dense_timeout_above < 1:
            raise ValueError("dense_timeout_above must be >= 1 (or None: never)")
        if self.mapillary_page_size is not None and self.mapillary_page_size < 1:
            raise ValueError("mapillary_page_size must be >= 1 (or None: one page)")

    def _check_flickr(self) -> None:
        if self.flickr_deleted_answer not in FLICKR_DELETED_ANSWERS:
            raise ValueError(f"flickr_deleted_answer must be one of {FLICKR_DELETED_ANSWERS}")
        if not all(
            0 <= s <= 1 for s in (self.flickr_blank_total_share, self.flickr_empty_page_share)
        ):
            raise ValueError("flickr_blank_total_share and flickr_empty_page_share are in [0, 1]")
        if not 0 <= self.flickr_free_account_share <= 1:
            raise ValueError("flickr_free_account_share is in [0, 1]")
        if self.flickr_total_overcount < 0:
            raise ValueError("flickr_total_overcount must be >= 0")
        if not self.flickr_down_codes:
            raise ValueError("flickr_down_codes needs at least one code")
        if self.flickr_mediums not in FLICKR_MEDIUMS:
            raise ValueError(f"flickr_mediums must be one of {FLICKR_MEDIUMS}")


@dataclass(frozen=True)
class WorldSize:
    """How big the generated world is and what its photos are like; the default starts in
    well under a second. The shares of photos with a trait are the real service's, roughly:
    some of each, so a client meets every kind in any sizeable harvest."""

    flickr_photos: int = 16_000
    flickr_years: tuple[int, int] = (2008, 2023)
    flickr_no_geo_fraction: float = 0.12
    # Shares of photos whose datetaken Flickr vouches for only to the month (granularity 4),
    # the year (6) or "circa" (8); the rest are to the second (0).
    flickr_taken_granularity: tuple[float, float, float] = (0.03, 0.02, 0.01)
    # Share of originals uploaded as GIFs: Flickr keeps the original's format (`_o.gif`),
    # while every size it makes of it (Large, Medium...) is a JPEG.
    flickr_gif_share: float = 0.02
    # Share of photos without a Large whose owner hides the original as well, leaving only
    # Medium and smaller sizes (a fifth of the photos with a Large hide theirs, always).
    flickr_hidden_original_share: float = 0.05
    # Share of descriptions quoting a link their owner pasted, a token in its query (a shop's
    # or a cloud album's signed link): free text that must keep its words when published.
    flickr_linked_description_share: float = 0.05
    mapillary_paths: int = 8
    mapillary_dense_images: int = 2600
    hostile_urls_every: int = 9

    def __post_init__(self) -> None:
        shares = (*self.flickr_taken_granularity, self.flickr_gif_share)
        if len(self.flickr_taken_granularity) != 3 or sum(self.flickr_taken_granularity) > 1:
            raise ValueError("flickr_taken_granularity is 3 shares (month, year, circa), sum <= 1")
        others = (self.flickr_hidden_original_share, self.flickr_linked_description_share)
        if not all(0 <= x <= 1 for x in (*shares, *others)):
            raise ValueError("shares of photos are in [0, 1]")


@dataclass
class EmulatorConfig:
    """Everything the emulator needs; equal configs give equal worlds and answers."""

    seed: int = 7
    faults: Faults = field(default_factory=Faults)
    warts: Warts = field(default_factory=Warts)
    flickr_keys: frozenset[str] = frozenset({FLICKR_KEY})
    mapillary_tokens: frozenset[str] = frozenset({MAPILLARY_TOKEN})
    flickr_rate_per_s: float | None = None
    mapillary_rate_per_s: float | None = None
    url_ttl_s: float = 3600
    # Emulator seconds per wall second: outages and URL lifetimes run on this clock, so
    # a test can live through a three-minute outage in a fraction of the time.
    clock_speed: float = 1.0
    world: WorldSize = field(default_factory=WorldSize)
    cdn_cache_bytes: int = 256 * 1024 * 1024
    # None: every photo is its own picture. N: at most N distinct pictures per
    # shape, so benchmarks hit the render cache instead of the renderer.
    image_variety: int | None = None
