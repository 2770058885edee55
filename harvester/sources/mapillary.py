"""Mapillary (Graph API v4): regions by tiles, sequences, and listed ids, as image rows.

A tile task searches one box; a full answer (the silent 2,000 cap), a timeout, a 5xx for
that box alone (the breaker shut) or Graph's "reduce the amount of data" (a dense box)
turns into four quadrant tasks instead of images, so nothing is cut off. Whether the bbox
limit means 0.01 square degrees or 0.01 degrees per side is unsettled: tiles start at the
looser (area) reading, and the first tile refused as too large teaches the source the
per-side one for the rest of the run; such a tile is re-cut (and fails only once too small to
cut). Any other refusal says nothing of the box's size and fails the task as itself.
Sequence and id-list tasks fetch entity fields in `?ids=` batches; a batch refused because
one id is gone is halved until that id stands alone, and (its entity refusing it too)
becomes a row skipped as `unavailable`; an id `?ids=` refuses that its entity has means the
multi-get is not served there, and entities answer for the rest of the run, a batch's
asked for together (the limiter paces them) rather than one after another. Only Graph's "no
such object" (code 100/33, 803, HTTP 404/410) means gone; any other refusal is raised.
Thumbnail URLs are signed and expire: a 403 on fetch gets a fresh URL from the entity
endpoint and one more try. A search or sequence answered in pages (`paging.next`) is read
to its last page, each asked for by its cursor as the first was (`mapillary_pages`).
A request refused for naming a field Graph no longer serves (it withdrew `creator` for
years) is asked again at once without it, and no call names it again in the run, if records
can do without it (`mapillary_records.OPTIONAL_FIELDS`); an essential one fails as itself.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

import structlog
from pydantic import SecretStr

from harvester.http import (
    BadResponseError,
    BboxTooLargeError,
    Body,
    CircuitBreaker,
    CredentialGate,
    Destinations,
    FieldRetiredError,
    ForbiddenError,
    HostSlots,
    HttpClient,
    InvalidCredentials,
    NotFoundError,
    PermanentHttpError,
    RateLimitedError,
    RateLimiter,
    ServiceUnavailableError,
    SlowTransferError,
    TooMuchDataError,
    TransientHttpError,
    UnavailableError,
    graph_body_errors,
)
from harvester.records import Expansion, FoundImage, SubmitReport
from harvester.redact import redact_url
from harvester.sources.base import ImageView, TaskView
from harvester.sources.mapillary_csv import IdItem
from harvester.sources.mapillary_entities import entities
from harvester.sources.mapillary_pages import Collection, collect
from harvester.sources.mapillary_records import (
    DEFAULT_SIZE,
    LICENSES,
    OPTIONAL_FIELDS,
    THUMB_FIELDS,
    THUMB_NOTE,
    Filters,
    droppable,
    fields_for,
    found_image,
    group_name,
    record_id,
)
from harvester.sources.mapillary_submit import (
    IDS,
    PROVIDER,
    SEQUENCE,
    TILE,
    IdsPayload,
    MapillaryCampaign,
    MapillarySettings,
    SequencePayload,
    TilePayload,
    submit_mapillary,
    tile_task,
)
from harvester.sources.mapillary_tiles import (
    TILE_SIDE,
    Tile,
    plan_tiles,
    quadrants,
    refusal_side,
)
from harvester.sources.pages import page_url
from harvester.sources.settings import read_stored
from harvester.storage.layout import file_name

log = structlog.get_logger("harvester.sources.mapillary")
T = TypeVar("T")

SEARCH_CAP = 2000  # the most one bbox search returns, without saying it stopped
# Outage answers a search takes before its box is cut instead, while the API answers other
# calls: few enough that a box's own 5xx cannot open the breaker (3 in a row) by itself.
SEARCH_OUTAGE_ATTEMPTS = 2
BATCH_IDS = 50  # ids per `?ids=` request
DEFAULT_THUMB = f"thumb_{DEFAULT_SIZE}_url"
UNAVAILABLE = "unavailable: Mapillary has no image with this id (deleted or private)"

__all__ = ["MapillaryCampaign", "MapillarySource", "SubmitReport", "submit_mapillary"]


class MapillarySource:
    """Implements `harvester.sources.base.Source` for the Mapillary Graph API."""

    provider = PROVIDER
    kinds = frozenset({TILE, SEQUENCE, IDS})

    def __init__(
        self,
        http: HttpClient,
        *,
        api_url: str,
        token: SecretStr | None,
        search_limiter: RateLimiter,
        entity_limiter: RateLimiter,
        breaker: CircuitBreaker | None = None,
        host_slots: HostSlots | None = None,
        max_bytes: int | None = None,
        destinations: Destinations | None = None,
    ) -> None:
        self._http = http
        self._destinations = destinations
        self._api = api_url.rstrip("/")
        secret = token.get_secret_value() if token is not None else ""
        self._headers = {"Authorization": f"OAuth {secret}"} if secret else {}
        self._secrets = (secret,) if secret else ()
        self._search_limiter = search_limiter
        self._entity_limiter = entity_limiter
        self._host_slots = host_slots
        self._max_bytes = max_bytes
        self._breaker = breaker or CircuitBreaker("mapillary")
        self._gate = CredentialGate()
        # The longest tile side the search accepted, learned from refusals, kept for the run.
        self._tile_side = TILE_SIDE
        # Whether `?ids=` is served; an id it refuses that its entity has says not, for the run.
        self._multi_get_works = True
        # Optional fields Graph refused as nonexisting: not asked for again in this run.
        self._dropped: frozenset[str] = frozenset()

    # -- expand ---------------------------------------------------------------------

    async def expand(self, task: TaskView, campaign: Mapping[str, Any]) -> Expansion:
        settings = read_stored(MapillarySettings, campaign, "Mapillary campaign settings")
        size, min_side = settings.size, settings.min_side
        filters = Filters.of(campaign)
        if task.kind == TILE:
            expansion = await self._expand_tile(task, size, min_side, filters)
        elif task.kind == SEQUENCE:
            expansion = await self._expand_sequence(task, size, min_side, filters)
        elif task.kind == IDS:
            expansion = await self._expand_ids(task, size, min_side, filters)
        else:
            raise ValueError(f"MapillarySource cannot run {task.kind!r} tasks")
        expansion.licenses = list(LICENSES)
        return expansion

    async def _expand_tile(
        self, task: TaskView, size: str, min_side: int, filters: Filters
    ) -> Expansion:
        payload = read_stored(TilePayload, task.payload, f"task {task.id} payload")
        tile = Tile.of(payload.bbox)
        query = payload.query or f"bbox {tile.param()}"
        expansion = Expansion(query=query)
        side = self._tile_side
        if not tile.fits(side):
            # A coarse tile from a huge region, or wider than this run has learned works.
            return self._cut(task, expansion, plan_tiles(tile, side), "side", side)
        params = {"bbox": tile.param(), "limit": str(SEARCH_CAP), **filters.search_params()}
        try:
            found = await self._asking(
                size, lambda fields: self._collection("images", {**params, "fields": fields})
            )
        except (InvalidCredentials, RateLimitedError):
            raise
        except BboxTooLargeError as refusal:
            # The box over the size limit: the only refusal that teaches a tile side. Any
            # other (an essential field retired, no permission) fails the task as itself.
            return self._refused(task, expansion, tile, refusal)
        except TooMuchDataError:
            # Too many images in the box (whatever the limit): smaller boxes, not a retry.
            if not tile.divisible:
                raise
            return self._cut(task, expansion, quadrants(tile), "dense", side)
        except TransientHttpError as exc:
            why = _too_heavy(exc, self._breaker)
            if why is None or not tile.divisible:
                raise  # retried (a page in the API's place, a cut body), or an outage's
            return self._cut(task, expansion, quadrants(tile), why, side)
        records = found.items
        full = len(records) >= SEARCH_CAP or not found.complete
        if full and tile.divisible:
            log.info("tile_split", task_id=task.id, bbox=tile.param(), returned=len(records))
            return self._cut(task, expansion, quadrants(tile), "cap", side, returned=len(records))
        expansion.images, expansion.result = _images(records, size, min_side, filters)
        expansion.result.update(side=side, **found.detail())
        if full:
            # Cannot split below MIN_SIDE: keep what came and say so.
            expansion.result["capped"] = True
            log.warning("tile_capped", task_id=task.id, bbox=tile.param())
        return expansion

    def _refused(
        self, task: TaskView, expansion: Expansion, tile: Tile, refusal: BboxTooLargeError
    ) -> Expansion:
        """A tile the search refused as too large: re-cut it smaller, and remember the size;
        one too small to cut again fails the task (too_much_data), not done with nothing."""
        side = refusal_side(tile)
        if side is None:
            log.warning("tile_refused", task_id=task.id, bbox=tile.param())
            raise refusal
        if side < self._tile_side:
            log.info("tile_side_learned", side=side, was=self._tile_side, rule="per_side")
            self._tile_side = side
        parts = plan_tiles(tile, side)
        return self._cut(task, expansion, parts, "refused", side)

    @staticmethod
    def _cut(
        task: TaskView,
        expansion: Expansion,
        parts: Sequence[Tile],
        why: str,
        side: float,
        **detail: int,
    ) -> Expansion:
        expansion.follow_up = [tile_task(task.campaign_id, t, expansion.query) for t in parts]
        expansion.result = {"split": len(parts), "why": why, "side": side, **detail}
        return expansion

    async def _expand_sequence(
        self, task: TaskView, size: str, min_side: int, filters: Filters
    ) -> Expansion:
        payload = read_stored(SequencePayload, task.payload, f"task {task.id} payload")
        sequence_id = payload.sequence_id
        expansion = Expansion(query=payload.query or f"sequence {sequence_id}")
        listing = await self._collection("image_ids", {"sequence_id": sequence_id}, search=False)
        ids = [i for i in (record_id(r) for r in listing.items) if i]
        ids = list(dict.fromkeys(ids))
        records = await self._batch(ids, size)
        listed = IdItem(image_id="", sequence_id=sequence_id)  # the group if a record lacks one
        found = [records[i] for i in ids if i in records]
        expansion.images, expansion.result = _images(found, size, min_side, filters, listed)
        gone = [i for i in ids if i not in records]
        expansion.images += [_missing(i, IdItem(i, sequence_id)) for i in gone]
        expansion.result.update(ids=len(ids), missing=len(gone), **listing.detail())
        return expansion

    async def _expand_ids(
        self, task: TaskView, size: str, min_side: int, filters: Filters
    ) -> Expansion:
        payload = read_stored(IdsPayload, task.payload, f"task {task.id} payload")
        items = [listed.item() for listed in payload.items]
        expansion = Expansion(query=payload.query or "ids")
        by_id: dict[str, list[IdItem]] = defaultdict(list)
        for item in items:
            by_id[item.image_id].append(item)
        records = await self._batch(list(by_id), size)
        kept = dropped = missing = 0
        for image_id, listed in by_id.items():
            record = records.get(image_id)
            if record is None:
                expansion.images.append(_missing(image_id, listed[0]))
                missing += 1
                continue
            if not filters.keeps(record):
                dropped += 1
                continue
            image = found_image(
                record, size=size, min_side=min_side, listed=listed[0], detail=_pair_detail(listed)
            )
            if image is not None:
                expansion.images.append(image)
                kept += 1
        expansion.result = {
            "listed": len(by_id), "kept": kept, "filtered": dropped, "missing": missing
        }  # fmt: skip
        return expansion

    async def _batch(self, ids: Sequence[str], size: str) -> dict[str, Mapping[str, Any]]:
        """Entity records by id, `BATCH_IDS` at a time: one `?ids=` request or, where that is
        refused, as many entities asked for together and no more (a sequence's thousands at
        once would queue on the entity limiter, first come first served, ahead of every
        other task's calls and thumbnail refreshes). Ids Mapillary lacks are absent."""
        records: dict[str, Mapping[str, Any]] = {}
        for start in range(0, len(ids), BATCH_IDS):
            await self._multi_get(ids[start : start + BATCH_IDS], size, records)
        return records

    async def _multi_get(
        self, ids: Sequence[str], size: str, records: dict[str, Mapping[str, Any]]
    ) -> None:
        """One `?ids=` request; refused as a whole (one id is gone), each half on its own."""
        if not self._multi_get_works:
            await self._entities(ids, size, records)
            return
        params = {"ids": ",".join(ids)}
        try:
            body = await self._asking(
                size, lambda fields: self._graph("", {**params, "fields": fields}, search=False)
            )
        except InvalidCredentials:
            raise
        except PermanentHttpError as exc:
            if isinstance(exc, NotFoundError) and len(ids) > 1:
                # One id gone refuses the batch: each half on its own, down to that id.
                middle = len(ids) // 2
                await self._multi_get(ids[:middle], size, records)
                await self._multi_get(ids[middle:], size, records)
                return
            # The id Mapillary does not have, or `?ids=` (Graph's, not in Mapillary's
            # documentation) not served here: the entities tell which, and an error of
            # their own (a field, a permission) fails the task as itself.
            if await self._entities(ids, size, records):
                log.info("multi_get_refused", image_id=ids[0])
                self._multi_get_works = False
            return
        for record in _batch_records(body, self._shown("")):
            image_id = record_id(record)
            if image_id is not None:
                records[image_id] = record

    async def _entities(
        self, ids: Sequence[str], size: str, records: dict[str, Mapping[str, Any]]
    ) -> int:
        """Each image's record from its entity, asked for together (`mapillary_entities`);
        how many were found. A gone image is only absent: it fails no other; an error that
        would fail the task cancels the calls still running."""
        found = await entities(ids, partial(self._record, size=size))
        records.update(found)
        return len(found)

    async def _record(self, image_id: str, size: str) -> Mapping[str, Any] | None:
        try:
            return await self._asking(size, partial(self._entity, image_id))
        except UnavailableError:
            return None

    async def _entity(self, image_id: str, fields: str) -> dict[str, Any]:
        """One image's entity with `fields`, for records and fresh thumbnail URLs alike;
        UnavailableError when it is gone: refused as no such object (Graph code 100 with
        subcode 33, code 803, HTTP 404 or 410), or its bare id alone (as a deleted image may
        answer). Any other refusal (a field, a permission) is raised as itself."""
        try:
            body = await self._graph(image_id, {"fields": fields}, search=False)
        except NotFoundError as exc:
            raise UnavailableError(f"{UNAVAILABLE} ({exc})", url=exc.url) from exc
        if not isinstance(body, dict) or record_id(body) != image_id or len(body) < 2:
            shown = self._shown(image_id)
            raise UnavailableError(f"{UNAVAILABLE} (no fields in its entity)", url=shown)
        return body

    # -- fetch ----------------------------------------------------------------------

    async def fetch(self, image: ImageView) -> Body:
        """The thumbnail; a 403 (signed URL expired) gets one fresh URL and one more try."""
        if not image.source_url:
            return await self._download(await self._fresh_url(image))
        try:
            return await self._download(image.source_url)
        except (ForbiddenError, NotFoundError):
            # Expired (403), or gone (404): the entity says which, and gives a fresh URL.
            log.info("thumb_url_refreshed", image_id=image.id)
            return await self._download(await self._fresh_url(image))

    def page_url(self, image: ImageView) -> str | None:
        return page_url(self.provider, image.provider_id, image.raw, image.source_url)

    async def _download(self, url: str) -> Body:
        # No token here: thumbnails are capability URLs on a CDN, not the Graph API.
        return await self._http.fetch(
            url,
            host_slots=self._host_slots,
            max_bytes=self._max_bytes,
            destinations=self._destinations,
        )

    async def _fresh_url(self, image: ImageView) -> str:
        note = (image.raw or {}).get(THUMB_NOTE)
        field = note if note in THUMB_FIELDS else DEFAULT_THUMB
        url = (await self._entity(image.provider_id, f"id,{field}")).get(field)
        if not isinstance(url, str) or not url:
            # Gone the quiet way, as final for the row as a refused id.
            shown = self._shown(image.provider_id)
            raise UnavailableError(f"{UNAVAILABLE} (no {field} in its entity)", url=shown)
        return url

    # -- Graph calls ----------------------------------------------------------------

    async def _asking(self, size: str, call: Callable[[str], Awaitable[T]]) -> T:
        """`call(fields)` with the fields this run still asks for. A refusal naming an
        optional field the call asked for drops that field for the run (every call after,
        of the three kinds, goes without it) and asks again at once; each retry drops one
        more, so never more retries than OPTIONAL_FIELDS. Any other field refused (one a row
        cannot do without) fails as itself. Entities already in flight when a field goes
        are each refused once, and each asked again without it."""
        for _ in OPTIONAL_FIELDS:
            fields = fields_for(size, self._dropped)
            try:
                return await call(fields)
            except FieldRetiredError as exc:
                asked = exc.field in fields.split(",")
                if not asked or not droppable(exc.field, self._dropped):
                    raise
                if exc.field not in self._dropped:
                    log.warning("mapillary_field_retired", field=exc.field)
                    self._dropped |= {exc.field}
        return await call(fields_for(size, self._dropped))

    async def _graph(self, path: str, params: Mapping[str, str], *, search: bool) -> Any:
        """One Graph GET; an error object in the body is classified by its code, whatever
        the status, and a refused token is sent once, never again."""
        if not self._secrets:
            shown = self._shown(path)
            raise InvalidCredentials(f"no Mapillary token configured for {shown}", url=shown)
        async with self._gate.use():
            return await self._http.get_json(
                f"{self._api}/{path}",
                params=params,
                headers=self._headers,
                limiter=self._search_limiter if search else self._entity_limiter,
                secrets=self._secrets,
                breaker=self._breaker,
                body_errors=graph_body_errors,
                api="mapillary",
                outage_attempts=SEARCH_OUTAGE_ATTEMPTS if search else None,
            )

    async def _collection(
        self, path: str, params: Mapping[str, str], *, search: bool = True
    ) -> Collection:
        """Every page of a Graph collection, each asked for as the first one was."""
        fetch = partial(self._graph, path, search=search)
        return await collect(fetch, params, api=self._api, shown=self._shown(path))

    def _shown(self, path: str) -> str:
        return redact_url(f"{self._api}/{path}")


def _too_heavy(exc: TransientHttpError, breaker: CircuitBreaker) -> str | None:
    """Why a failed search says its box is too heavy to answer, or None if it does not: it
    timed out, or had outage answers while the API answers other calls (its breaker shut).
    A page in the API's place, a cut body or an error marked transient is only retried."""
    if isinstance(exc, ServiceUnavailableError):
        return "unavailable" if exc.status is not None and not breaker.is_open else None
    timed_out = exc.reason == "timeout" or isinstance(exc, SlowTransferError)
    return "timeout" if timed_out else None


def _images(
    records: Sequence[Any],
    size: str,
    min_side: int,
    filters: Filters,
    listed: IdItem | None = None,
) -> tuple[list[FoundImage], dict[str, Any]]:
    images: list[FoundImage] = []
    dropped = malformed = 0
    for record in records:
        if not isinstance(record, dict):
            malformed += 1
            continue
        if not filters.keeps(record):
            dropped += 1
            continue
        image = found_image(record, size=size, min_side=min_side, listed=listed)
        if image is None:
            malformed += 1
        else:
            images.append(image)
    result = {"returned": len(records), "kept": len(images), "filtered": dropped}
    if malformed:
        result["malformed"] = malformed
    return images, result


def _pair_detail(listed: Sequence[IdItem]) -> dict[str, Any] | None:
    """{"pair": line, "other": id} of the first pair; all of them when there are several."""
    pairs = [i for i in listed if i.pair is not None]
    if not pairs:
        return None
    detail: dict[str, Any] = {"pair": pairs[0].pair, "other": pairs[0].other}
    if len(pairs) > 1:
        detail["pairs"] = [{"pair": i.pair, "other": i.other, "role": i.role} for i in pairs]
    return detail


def _missing(image_id: str, listed: IdItem) -> FoundImage:
    """A listed id Mapillary does not return (deleted, private): a row saying so."""
    return FoundImage(
        provider_id=image_id,
        group=group_name(listed.sequence_id),
        file_name=file_name(image_id),
        source_url=None,
        record={"lat": listed.lat, "lon": listed.lon, "sequence_id": listed.sequence_id},
        skip_reason=UNAVAILABLE,
        role=listed.role,
        hit_detail=_pair_detail([listed]),
    )


def _batch_records(body: Any, shown: str) -> list[Mapping[str, Any]]:
    """`?ids=` answers are keyed by id; a `data` list is accepted too."""
    if isinstance(body, dict) and isinstance(body.get("data"), list):
        values: list[Any] = body["data"]
    elif isinstance(body, dict):
        values = list(body.values())
    else:
        raise BadResponseError(f"Graph batch answer is not an object from {shown}", url=shown)
    return [v for v in values if isinstance(v, dict)]
