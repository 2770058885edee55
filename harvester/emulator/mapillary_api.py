"""Mapillary Graph API (v4) under /mapillary: image search, entities, batches, sequences.

Errors use the Graph shape `{"error": {"message", "type", "code", "fbtrace_id"}}`;
search refuses boxes over the 0.01-degree limit (read per side by default, or as an
area) and returns at most 2,000 images without saying that it stopped, so a client
must split capped tiles itself; a box holding too many images at all is refused with
Graph code 1 ("reduce the amount of data", HTTP 500) whatever the limit. A multi-get
(`?ids=`) naming one unknown or deleted id fails as a whole, as the real one does.
Collections may come in pages (`Warts.mapillary_page_size`) with Graph's cursors.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from harvester.emulator.cdn import MAPILLARY_SIZES, UrlSigner
from harvester.emulator.config import BARE, PER_SIDE, Warts
from harvester.emulator.deleted import Deletions
from harvester.emulator.faults import mapillary_token
from harvester.emulator.mapillary_world import MapillaryImage
from harvester.emulator.stats import mark
from harvester.emulator.world import World, mapillary_filter

MAX_LIMIT = 2000
MAX_IDS = 50
_CURSOR = "offset:"
TOO_MUCH_DATA = "Please reduce the amount of data you're asking for, then retry your request"
GATEWAY_TIMEOUT = "<html><body><h1>504 Gateway Time-out</h1></body></html>\n"


def graph_error(
    status: int, message: str, kind: str = "MLYApiException", code: int = 100, **extra: int
) -> web.Response:
    body = {
        "error": {
            "message": message,
            "type": kind,
            "code": code,
            **extra,
            "fbtrace_id": secrets.token_urlsafe(8),
        }
    }
    return web.json_response(body, status=status)


class GraphError(Exception):
    """Raised inside a handler; becomes a Graph error response."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def _bad(message: str) -> GraphError:
    return GraphError(graph_error(400, message))


def _point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


def _fields(
    sign: Callable[[MapillaryImage, str], str], wild_share: float = 0.0
) -> dict[str, Callable[[MapillaryImage], Any]]:
    def solved(im: MapillaryImage) -> tuple[float, float, float] | None:
        return _wild(im) if im.computed and _unit(im, "wild") < wild_share else im.computed

    def computed_point(im: MapillaryImage) -> dict[str, Any] | None:
        pose = solved(im)
        return _point(pose[0], pose[1]) if pose else None

    out: dict[str, Callable[[MapillaryImage], Any]] = {
        "id": lambda im: im.id,
        "captured_at": lambda im: im.captured_at,
        "compass_angle": lambda im: im.compass_angle,
        "computed_compass_angle": lambda im: pose[2] if (pose := solved(im)) else None,
        "geometry": lambda im: _point(im.lon, im.lat),
        "computed_geometry": computed_point,
        "camera_type": lambda im: im.camera_type,
        "is_pano": lambda im: im.is_pano,
        "sequence": lambda im: im.sequence,
        "creator": lambda im: {"id": im.creator_id, "username": im.creator_username},
        "width": lambda im: im.width,
        "height": lambda im: im.height,
        "exif_orientation": lambda im: 1,
        "make": lambda im: "RICOH" if im.is_pano else "GoPro",
        "model": lambda im: "THETA Z1" if im.is_pano else "HERO9 Black",
        "altitude": lambda im: _unit(im, "alt") * 300.0,
        "camera_parameters": lambda im: [] if im.is_pano else [0.5 + _unit(im, "f"), 0.0, 0.0],
        "quality_score": lambda im: round(_unit(im, "q"), 4),
        "detections": lambda im: {"data": []},
        # Fields of the structure-from-motion reconstruction: absent where it has none.
        "computed_altitude": lambda im: _reconstructed(im, _unit(im, "alt") * 300.0 + 1.5),
        "computed_rotation": lambda im: _reconstructed(im, [_unit(im, "r"), 0.0, 0.0]),
        "atomic_scale": lambda im: _reconstructed(im, 0.9 + _unit(im, "s") / 5),
        "merge_cc": lambda im: _reconstructed(im, int(_unit(im, "cc") * 10**9)),
        "mesh": lambda im: _reconstructed(im, {"id": f"m{im.id}", "url": sign(im, "mesh")}),
        "sfm_cluster": lambda im: _reconstructed(im, {"id": im.sequence, "url": sign(im, "sfm")}),
    }
    for size in MAPILLARY_SIZES:
        out[f"{size}_url"] = lambda im, size=size: sign(im, size)  # type: ignore[misc]
    return out


def _unit(im: MapillaryImage, what: str) -> float:
    """A number in [0, 1) fixed by the image and the field."""
    digest = hashlib.blake2b(f"{im.id}:{what}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _wild(im: MapillaryImage) -> tuple[float, float, float]:
    """A reconstruction gone wrong: 0.005 to 0.02 degrees (about 0.4 to 2 km) away from
    the camera's fix, in a direction fixed by the image, facing a quarter turn off."""
    assert im.computed is not None
    away = 0.005 + 0.015 * _unit(im, "wild_d")
    angle = 2 * math.pi * _unit(im, "wild_a")
    lon = round(im.lon + away * math.cos(angle), 7)
    lat = round(max(-90.0, min(90.0, im.lat + away * math.sin(angle))), 7)
    return lon, lat, (im.computed[2] + 90) % 360


def _reconstructed(im: MapillaryImage, value: Any) -> Any:
    return value if im.computed is not None else None


class MapillaryApi:
    """aiohttp handlers for the Graph endpoints."""

    def __init__(
        self,
        world: World,
        signer: UrlSigner,
        tokens: frozenset[str],
        warts: Warts | None = None,
        deletions: Deletions | None = None,
    ) -> None:
        self.world = world
        self.signer = signer
        self.tokens = tokens
        self.warts = warts or Warts()
        self.deletions = deletions or Deletions(world.seed, 0.0)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/mapillary/images", self._wrap(self.images)),
            web.get("/mapillary/image_ids", self._wrap(self.image_ids)),
            web.get("/mapillary", self._wrap(self.batch)),
            web.get("/mapillary/", self._wrap(self.batch)),
            web.get("/mapillary/{image_id}", self._wrap(self.entity)),
        ]

    def _wrap(
        self, handler: Callable[[web.Request], dict[str, Any]]
    ) -> Callable[[web.Request], Any]:
        async def run(request: web.Request) -> web.Response:
            token = mapillary_token(request)
            if not token or token not in self.tokens:
                mark(request, "invalid_key")
                return graph_error(
                    401,
                    "Invalid OAuth access token - Cannot parse access token",
                    "OAuthException",
                    190,
                )
            try:
                return web.json_response(handler(request))
            except GraphError as exc:
                return exc.response

        return run

    def _render(self, request: web.Request, images: list[MapillaryImage]) -> list[dict[str, Any]]:
        base = f"{request.scheme}://{request.host}"

        def sign(im: MapillaryImage, size: str) -> str:
            return self.signer.sign(base, f"/cdn/mapillary/{size}/{im.id}.jpg")

        table = _fields(sign, self.warts.mapillary_wild_computed_share)
        names = ["id"] + [
            f.strip() for f in request.query.get("fields", "").split(",") if f.strip() and f != "id"
        ]
        retired = self.warts.mapillary_retired_fields
        unknown = [n for n in names if n not in table or n in retired]
        if unknown:
            mark(request, "retired_field")
            raise _bad(f"Tried accessing nonexisting field ({unknown[0]}) on node type (Image)")
        out = []
        for im in images:
            row = {}
            for name in names:
                value = table[name](im)
                if value is not None:  # optional fields are absent, not null
                    row[name] = value
            out.append(row)
        return out

    def images(self, request: web.Request) -> dict[str, Any]:
        q = request.query
        limit = _int(q.get("limit"), MAX_LIMIT)
        limit = max(1, min(limit, MAX_LIMIT))
        sequence_id = q.get("sequence_id") or None
        if q.get("bbox"):
            box = _bbox(q["bbox"], self.warts.bbox_rule, self.warts.bbox_limit)
            candidates = self.world.mapillary.in_bbox(box)
            dense = self.warts.dense_refusal_above
            if dense is not None and len(candidates) > dense:
                mark(request, "too_dense")
                raise GraphError(graph_error(500, TOO_MUCH_DATA, "OAuthException", 1))
            heavy = self.warts.dense_timeout_above
            if heavy is not None and len(candidates) > heavy:
                mark(request, "gateway_timeout")
                page = web.Response(status=504, text=GATEWAY_TIMEOUT, content_type="text/html")
                raise GraphError(page)
        elif sequence_id:
            candidates = self.world.mapillary_sequence(sequence_id)
        else:
            raise _bad("Please provide a bbox or a sequence_id")
        found = mapillary_filter(
            [im for im in candidates if not self.deletions.mapillary(im.id)],
            is_pano=_bool(q.get("is_pano")),
            start_captured_at=_when(q.get("start_captured_at")),
            end_captured_at=_when(q.get("end_captured_at")),
            sequence_id=sequence_id,
            creator_username=q.get("creator_username") or None,
        )
        return self._page(request, found[:limit], lambda page: self._render(request, page))

    def image_ids(self, request: web.Request) -> dict[str, Any]:
        seq = request.query.get("sequence_id")
        if not seq:
            raise _bad("sequence_id is required")
        images = self.world.mapillary_sequence(seq)
        kept = [im for im in images if not self.deletions.mapillary(im.id)]
        return self._page(request, kept, lambda page: [{"id": im.id} for im in page])

    def _page(
        self,
        request: web.Request,
        items: Sequence[MapillaryImage],
        render: Callable[[list[MapillaryImage]], list[dict[str, Any]]],
    ) -> dict[str, Any]:
        """The page of a collection `after=` asks for, with Graph's `paging` while more are
        left: its `next` URL carries the token in its query, wherever the caller sent it."""
        size = self.warts.mapillary_page_size
        if size is None:
            return {"data": render(list(items))}
        start = _offset(request.query.get("after"), len(items))
        end = min(start + size, len(items))
        body: dict[str, Any] = {"data": render(list(items[start:end]))}
        if end < len(items):
            after = _cursor(end)
            token = mapillary_token(request) or ""
            link = request.url.update_query(after=after, access_token=token)
            cursors = {"before": _cursor(start), "after": after}
            body["paging"] = {"cursors": cursors, "next": str(link)}
        return body

    def batch(self, request: web.Request) -> dict[str, Any]:
        ids = [i.strip() for i in request.query.get("ids", "").split(",") if i.strip()]
        if not self.warts.mapillary_multiget:
            raise _bad("Unsupported get request. Please read the Graph API documentation")
        if not ids:
            raise _bad("Unsupported get request. Please provide ids")
        if len(ids) > MAX_IDS:
            raise _bad(f"Too many IDs. Maximum: {MAX_IDS}. Provided: {len(ids)}.")
        found = [im for im in (self._image(i) for i in ids) if im is not None]
        unknown = [i for i in ids if self._image(i) is None]
        if unknown and not self.warts.multiget_drops_unknown:
            mark(request, "deleted")
            raise GraphError(
                graph_error(
                    404,
                    f"(#803) Some of the aliases you requested do not exist: {','.join(unknown)}",
                    "OAuthException",
                    803,
                )
            )
        return {row["id"]: row for row in self._render(request, found)}

    def _image(self, image_id: str) -> MapillaryImage | None:
        """The image with this id, unless there is none or it was deleted."""
        if self.deletions.mapillary(image_id):
            return None
        return self.world.mapillary.by_id.get(image_id)

    def entity(self, request: web.Request) -> dict[str, Any]:
        image_id = request.match_info["image_id"]
        image = self._image(image_id)
        answer = self.warts.mapillary_deleted_entity
        if image is None and answer == BARE and image_id in self.world.mapillary.by_id:
            mark(request, "deleted")
            return {"id": image_id}
        if image is None:
            mark(request, "deleted")
            if answer == "404" and image_id in self.world.mapillary.by_id:
                raise GraphError(graph_error(404, f"Object with ID '{image_id}' not found"))
            raise GraphError(
                graph_error(
                    400,
                    f"Unsupported get request. Object with ID '{image_id}' does not exist, cannot "
                    "be loaded due to missing permissions, or does not support this operation",
                    "GraphMethodException",
                    100,
                    error_subcode=33,
                )
            )
        return self._render(request, [image])[0]


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR}{offset}".encode()).decode().rstrip("=")


def _offset(cursor: str | None, length: int) -> int:
    """Where the page an `after` cursor names starts; a cursor this API did not write is
    refused."""
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    digits = text.removeprefix(_CURSOR)
    if not text.startswith(_CURSOR) or not digits.isdigit() or int(digits) > length:
        raise _bad(f"Invalid cursor: {cursor}")
    return int(digits)


def _int(raw: str | None, default: int) -> int:
    try:
        return int(raw) if raw else default
    except ValueError as exc:
        raise _bad(f"Invalid integer: {raw}") from exc


def _bool(raw: str | None) -> bool | None:
    if raw is None or raw == "":
        return None
    return raw.lower() in ("true", "1")


def _when(raw: str | None) -> int | None:
    """ISO 8601 in the docs' form (`2022-08-16T16:42:46Z`: a fraction of a second is
    refused, as no documented example has one) or epoch milliseconds; returns milliseconds."""
    if not raw:
        return None
    if raw.isdigit():
        return int(raw)
    if "." in raw:
        raise _bad(f"Invalid datetime: {raw}")
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _bad(f"Invalid datetime: {raw}") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def _bbox(raw: str, rule: str, limit: float) -> tuple[float, float, float, float]:
    try:
        minlon, minlat, maxlon, maxlat = (float(x) for x in raw.split(","))
    except ValueError as exc:
        raise _bad("Invalid bbox: expected minLon,minLat,maxLon,maxLat") from exc
    if minlon > maxlon or minlat > maxlat:
        raise _bad("Invalid bbox: min greater than max")
    width, height = maxlon - minlon, maxlat - minlat
    if rule == PER_SIDE and max(width, height) >= limit - 1e-12:
        raise _bad(f"Bbox is too large, each side must be smaller than {limit:g} degrees")
    if width * height > limit + 1e-12:
        raise _bad(f"Bbox area is too large, please make it smaller than {limit:g} square degrees")
    return minlon, minlat, maxlon, maxlat
