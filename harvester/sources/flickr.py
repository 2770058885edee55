"""The Flickr source: keyword and region campaigns walked in dynamic upload-time windows.

Each window task reads its window completely (or, if it holds far too many photos,
hands back a smaller window at the same start) and hands back the next window. Every
window has a dedupe key, so a rerun after a crash never queries a finished window again.
The campaign side (FlickrCampaign, submit_flickr) lives in flickr_campaign and is
re-exported here, the one module the CLI and the daemon import.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from harvester.http import (
    Body,
    CircuitBreaker,
    CredentialGate,
    Destinations,
    ForbiddenError,
    HostSlots,
    HttpClient,
    InvalidCredentials,
    NotFoundError,
    RateLimiter,
    UnavailableError,
    flickr_body_errors,
)
from harvester.records import Expansion, FoundImage, SubmitReport
from harvester.redact import redact_url
from harvester.sources.base import ImageView, TaskView, fetch_plain
from harvester.sources.flickr_campaign import (
    LICENSES_KIND,
    PROVIDER,
    WINDOW_KIND,
    CampaignPlan,
    FlickrCampaign,
    FlickrTaskError,
    WindowPayload,
    submit_flickr,
    window_task,
)
from harvester.sources.flickr_parse import (
    NegativeTerms,
    SearchPage,
    bad_answer,
    decode_body,
    found_image,
    large_instead,
    licenses_of,
    parse_queries,
    photo_id,
    search_page,
)
from harvester.sources.flickr_placeholder import fetch_photo, is_placeholder
from harvester.sources.flickr_windows import (
    PAGING_CEILING,
    Window,
    next_window,
    shrink,
    split,
    too_many,
)
from harvester.sources.pages import page_url
from harvester.sources.settings import read_stored

EXTRAS = (
    "description,license,date_upload,date_taken,owner_name,original_format,o_dims,"
    "geo,tags,views,url_l,url_o,url_c,url_z,url_h,url_k"
)
PER_PAGE_GEO = 250  # Flickr's maximum for geo queries
PER_PAGE = 500
MAX_SPLIT_DEPTH = 8

__all__ = [
    "LICENSES_KIND",
    "PROVIDER",
    "WINDOW_KIND",
    "FlickrCampaign",
    "FlickrSource",
    "FlickrTaskError",
    "SubmitReport",
    "parse_queries",
    "submit_flickr",
]


@dataclass
class _Read:
    """Photos of one window, deduplicated, and what reading them cost. `last_try`: the
    task's last run, which takes a page Flickr keeps answering empty as it is."""

    last_try: bool = False
    photos: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    calls: int = 0
    duplicates: int = 0
    splits: int = 0
    # Pages answered empty before the announced last, twice, with the last one empty too:
    # Flickr's total counted photos it does not list (an overcount), so the window ends there.
    short_ends: int = 0
    # Such pages with photos on the last one after them, passed over on the last try.
    holes: int = 0


class FlickrSource:
    """flickr.photos.search windows and licences, every call through the key's limiter."""

    provider = PROVIDER
    kinds = frozenset({WINDOW_KIND, LICENSES_KIND})

    def __init__(
        self,
        http: HttpClient,
        *,
        api_url: str,
        api_key: SecretStr | None,
        limiter: RateLimiter,
        breaker: CircuitBreaker | None = None,
        host_slots: HostSlots | None = None,
        max_bytes: int | None = None,
        destinations: Destinations | None = None,
    ) -> None:
        self._http = http
        self._destinations = destinations
        self._api_url = api_url
        self._shown_url = redact_url(api_url)
        self._key = api_key
        self._limiter = limiter
        self._breaker = breaker or CircuitBreaker("flickr")
        self._gate = CredentialGate()
        self._host_slots = host_slots
        self._max_bytes = max_bytes

    async def expand(self, task: TaskView, campaign: Mapping[str, Any]) -> Expansion:
        if task.kind == LICENSES_KIND:
            body = await self._call("flickr.photos.licenses.getInfo", {})
            rows = licenses_of(body)
            return Expansion(query="", licenses=rows, result={"licenses": len(rows)})
        if task.kind != WINDOW_KIND:
            raise FlickrTaskError(f"FlickrSource cannot run tasks of kind {task.kind!r}")
        payload = read_stored(WindowPayload, task.payload, f"task {task.id} payload")
        window = Window(payload.start, payload.end)
        plan = CampaignPlan.of(campaign)
        read = _Read(last_try=task.last_try)
        return await self._expand_window(
            task.campaign_id, task.id, payload.query, window, plan, read
        )

    async def fetch(self, image: ImageView) -> Body:
        """The photo's body; a deleted one (placeholder, 404 or 410) is `unavailable`. A
        size over Large refused (403: since May 2025 Flickr serves free accounts' photos
        to others at 1024 px at most) is fetched as Large instead, when search gave one."""
        if not image.source_url:
            return await fetch_plain(self._http, image)  # raises: nothing to fetch
        try:
            return await self._fetch_photo(image.source_url)
        except ForbiddenError:
            large = large_instead(image.raw, image.source_url)
            if large is None:
                raise
            return await self._fetch_photo(large)

    async def _fetch_photo(self, url: str) -> Body:
        try:
            return await fetch_photo(
                self._http,
                url,
                is_placeholder,
                host_slots=self._host_slots,
                max_bytes=self._max_bytes,
                destinations=self._destinations,
                refused_placeholder=True,
            )
        except NotFoundError as exc:
            # A URL the API handed out that the CDN no longer has: the photo went away.
            raise UnavailableError(
                f"{exc}: deleted or made private since it was found", url=exc.url
            ) from exc

    def page_url(self, image: ImageView) -> str | None:
        return page_url(self.provider, image.provider_id, image.raw, image.source_url)

    # -- one window -------------------------------------------------------------------

    async def _expand_window(
        self,
        campaign_id: int,
        task_id: int,
        query: str,
        window: Window,
        plan: CampaignPlan,
        read: _Read,
    ) -> Expansion:
        first = await self._search(query, window, plan, page=1)
        result: dict[str, Any] = {"window": [window.start, window.end], "total": first.total}
        if too_many(first.total, plan.target):
            smaller = shrink(window, first.total, plan.target)
            if smaller is not None:
                result.update(action="shrink", next=[smaller.start, smaller.end], calls=1)
                follow_up = [window_task(campaign_id, query, smaller, parent=task_id)]
                return Expansion(query, follow_up=follow_up, result=result)
        read.calls = 1
        await self._read_window(query, window, plan, first, read, depth=0)
        expansion = self._images(query, read, plan, result)
        after = next_window(window, len(read.photos), plan.target, plan.limit)
        result["action"] = "read"
        if after is not None:
            expansion.follow_up.append(window_task(campaign_id, query, after, parent=task_id))
            result["next"] = [after.start, after.end]
        return expansion

    async def _read_window(
        self,
        query: str,
        window: Window,
        plan: CampaignPlan,
        first: SearchPage,
        read: _Read,
        depth: int,
    ) -> None:
        """Page a window through; if Flickr repeated photos, read its halves instead."""
        seen: dict[str, Mapping[str, Any]] = {}
        # Paging stops at the ceiling whatever `pages` claims: past it Flickr only repeats.
        per_page = len(first.photos) or _per_page(plan)
        last_page = min(first.pages, -(-PAGING_CEILING // per_page) + 1)
        duplicates = 0
        for number in range(1, last_page + 1):
            page = first
            if number > 1:
                page = await self._search(query, window, plan, page=number)
                read.calls += 1
            if not page.photos and number < last_page:
                asked = await self._empty_page(query, window, plan, number, last_page, read)
                if asked is None:
                    break  # the window ends here
                page = asked
            duplicates += _add(seen, page.photos)
        halves = split(window) if duplicates and depth < MAX_SPLIT_DEPTH else None
        if halves is None:
            read.duplicates += duplicates
            for pid, record in seen.items():
                read.photos.setdefault(pid, record)
            return
        # Repeats replace photos Flickr never shows us: the window is incomplete as read.
        read.splits += 1
        for half in halves:
            head = await self._search(query, half, plan, page=1)
            read.calls += 1
            await self._read_window(query, half, plan, head, read, depth + 1)

    def _images(
        self, query: str, read: _Read, plan: CampaignPlan, result: dict[str, Any]
    ) -> Expansion:
        negatives = NegativeTerms(plan.negatives)
        images: list[FoundImage] = []
        removed = malformed = 0
        for record in read.photos.values():
            if negatives.matches(record):
                removed += 1
                continue
            image = found_image(record, query, plan.min_side, plan.max_side)
            if image is None:
                malformed += 1
                continue
            images.append(image)
        result.update(
            found=len(read.photos),
            images=len(images),
            negatives_removed=removed,
            malformed=malformed,
            skipped=sum(1 for i in images if i.skip_reason),
            duplicates=read.duplicates,
            splits=read.splits,
            calls=read.calls,
        )
        if read.short_ends or read.holes:
            result.update(short_ends=read.short_ends, holes=read.holes)
        return Expansion(query, images=images, result=result)

    # -- API calls --------------------------------------------------------------------

    async def _search(
        self, query: str, window: Window, plan: CampaignPlan, *, page: int
    ) -> SearchPage:
        params = {
            "text": query,
            "media": "photos",
            "sort": "date-posted-asc",
            # 1, not 0, for a window from the epoch: "0" reads as no limit at all, and a geo
            # query without one is cut to the last 12 hours (no photo is older anyway).
            "min_upload_date": str(max(window.start, 1)),
            "max_upload_date": str(window.last_second),
            "extras": EXTRAS,
            "per_page": str(_per_page(plan)),
            "page": str(page),
        }
        if plan.geo_only:
            params.update(has_geo="1", accuracy=str(plan.accuracy))
        if plan.bbox is not None:
            params["bbox"] = ",".join(f"{x:.6f}" for x in plan.bbox)
        if plan.licenses:
            params["license"] = ",".join(plan.licenses)
        shown = self._shown("flickr.photos.search")
        return search_page(await self._call("flickr.photos.search", params), url=shown)

    async def _empty_page(
        self, query: str, window: Window, plan: CampaignPlan, number: int, last: int, read: _Read
    ) -> SearchPage | None:
        """A page with no photos before the last announced one: asked again (Flickr now and
        then answers one empty), then the last page asked. Empty too, the total counted
        photos no page lists (private or removed since): the window ends here (None). With
        photos there, the pages between are a hole: `bad_response`, retried later, except on
        the task's last try, which passes over it rather than end the query's chain."""
        again = await self._search(query, window, plan, page=number)
        read.calls += 1
        if again.photos:
            return again
        tail = await self._search(query, window, plan, page=last)
        read.calls += 1
        if not tail.photos:
            read.short_ends += 1
            return None
        if not read.last_try:
            shown = self._shown("flickr.photos.search")
            raise bad_answer(f"no photos on page {number} of {last}, photos on page {last}", shown)
        read.holes += 1
        return again

    async def _call(self, method: str, params: Mapping[str, str]) -> dict[str, Any]:
        """One REST call (JSON, no callback). `stat: fail` is classified inside the HTTP
        client's attempts, so code 105 is retried and counted by the breaker like a 503;
        a refused key is sent once, never again."""
        key = self._key.get_secret_value() if self._key is not None else ""
        shown = self._shown(method)
        if not key:
            raise InvalidCredentials(f"no Flickr API key configured for {shown}", url=shown)
        full = {
            "method": method,
            "api_key": key,
            "format": "json",
            "nojsoncallback": "1",
            **params,
        }
        async with self._gate.use():
            text = await self._http.get_text(
                self._api_url,
                params=full,
                limiter=self._limiter,
                secrets=[key],
                breaker=self._breaker,
                body_errors=flickr_body_errors([key]),
                api="flickr",
            )
        return decode_body(text, url=shown)

    def _shown(self, method: str) -> str:
        return f"{self._shown_url}?method={method}"


def _per_page(plan: CampaignPlan) -> int:
    return PER_PAGE_GEO if plan.geo_only or plan.bbox is not None else PER_PAGE


def _add(seen: dict[str, Mapping[str, Any]], photos: list[Mapping[str, Any]]) -> int:
    """Add photos by id; returns how many were repeats of ones already seen."""
    repeats = 0
    for record in photos:
        pid = photo_id(record)
        if pid is None:
            continue
        if pid in seen:
            repeats += 1
        else:
            seen[pid] = record
    return repeats
