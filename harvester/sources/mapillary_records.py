"""From Graph API image records to catalogue rows, leniently.

Fields may be missing (optional ones are absent, not null), numbers may come as strings
and `sequence`/`creator` as an id or an object; one bad record is dropped and counted,
never allowed to sink the whole task.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, get_args

from harvester.exporters.geo import distance_m
from harvester.records import FoundImage
from harvester.sources.fields import identifier, instant, number, positive
from harvester.sources.mapillary_csv import IdItem
from harvester.storage.layout import file_name, slug

LICENSE_ID = "CC-BY-SA-4.0"
LICENSES: list[tuple[str, str, str | None]] = [
    (LICENSE_ID, "CC BY-SA 4.0", "https://creativecommons.org/licenses/by-sa/4.0/")
]
ThumbSize = Literal["256", "1024", "2048", "original"]
SIZES: tuple[ThumbSize, ...] = get_args(ThumbSize)
DEFAULT_SIZE: ThumbSize = "1024"
THUMB_FIELDS = tuple(f"thumb_{size}_url" for size in SIZES)
BASE_FIELDS = (
    "id",
    "captured_at",
    "compass_angle",
    "computed_compass_angle",
    "geometry",
    "computed_geometry",
    "camera_type",
    "is_pano",
    "sequence",
    "creator",
    "width",
    "height",
)
# Fields a record may lack when Graph stops serving them (it withdrew `creator` for years):
# a refused one is dropped for the run, not the harvest. The rest are what a row cannot do
# without: its id, position, date, thumbnail, and `sequence` (a tile's rows are grouped and
# split into VPR roles by it). `is_pano` and `camera_type` each tell a 360° picture, so one
# of the two always stays (PANO_FIELDS): a pano_only campaign's filter must keep its say.
OPTIONAL_FIELDS = (
    "creator",
    "camera_type",
    "is_pano",
    "compass_angle",
    "computed_compass_angle",
    "computed_geometry",
    "width",
    "height",
)
PANO_FIELDS = frozenset({"is_pano", "camera_type"})
# Where in `raw` we note which thumbnail field the row's URL came from, so that an
# expired URL can be refreshed with the same size. Not a Mapillary field.
THUMB_NOTE = "harvester_thumb_field"
# Where `raw` notes that the row's position and heading are the camera's, its computed one
# set aside (SHIFT_REFUSED): a reconstruction that moved the camera farther than a GPS fix
# errs is one gone wrong, not a correction. 25 m is also the radius VPR matches are judged
# by: a position off by more would mislabel every pair the image is in. Not a Mapillary field.
POSITION_NOTE = "harvester_position"
SHIFT_REFUSED = "camera (its computed_geometry over 25 m away, set aside)"
MAX_COMPUTED_SHIFT_M = 25.0
NO_SEQUENCE = "no-sequence"
# Projections of a 360° picture: v4's docs name "spherical", and Mapillary's own viewer
# (mapillary-js isSpherical) reads "equirectangular" as spherical too.
SPHERICAL = frozenset({"spherical", "equirectangular"})
_SAFE_GROUP = re.compile(r"[A-Za-z0-9_-]{1,200}")


def thumb_field(size: str) -> str:
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, got {size!r}")
    return f"thumb_{size}_url"


def fields_for(size: str, without: frozenset[str] = frozenset()) -> str:
    return ",".join((*(f for f in BASE_FIELDS if f not in without), thumb_field(size)))


def droppable(field: str, dropped: frozenset[str]) -> bool:
    """Whether records may go without `field`, besides the fields already `dropped`."""
    if field not in OPTIONAL_FIELDS:
        return False
    return field not in PANO_FIELDS or not (PANO_FIELDS - {field}) & dropped


@dataclass(frozen=True)
class Filters:
    """The campaign's record filters (also sent to the search API where it has them)."""

    pano_only: bool = False
    start_ms: int | None = None  # inclusive
    end_ms: int | None = None  # exclusive

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> Filters:
        start = _date(settings.get("min_captured_at"))
        end = _date(settings.get("max_captured_at"))
        return cls(
            pano_only=bool(settings.get("pano_only", False)),
            start_ms=_day_ms(start) if start else None,
            end_ms=_day_ms(end + timedelta(days=1)) if end else None,
        )

    def search_params(self) -> dict[str, str]:
        params: dict[str, str] = {}
        if self.pano_only:
            params["is_pano"] = "true"
        if self.start_ms is not None:
            params["start_captured_at"] = _iso(self.start_ms)
        if self.end_ms is not None:
            # The next day's midnight: whole seconds as the docs write them; `keeps` drops
            # that instant if the API counts its end in.
            params["end_captured_at"] = _iso(self.end_ms)
        return params

    def keeps(self, record: Mapping[str, Any]) -> bool:
        if self.pano_only and not is_spherical(record):
            return False
        if self.start_ms is None and self.end_ms is None:
            return True
        when = _ms(record.get("captured_at"))
        if when is None:
            return False  # a date filter cannot vouch for an undated image
        return (self.start_ms is None or when >= self.start_ms) and (
            self.end_ms is None or when < self.end_ms
        )


def is_spherical(record: Mapping[str, Any]) -> bool:
    camera = record.get("camera_type")
    return _bool(record.get("is_pano")) is True or (isinstance(camera, str) and camera in SPHERICAL)


def record_id(record: Any) -> str | None:
    """The image id of a record: digits only (Mapillary's are), else None."""
    text = identifier(record.get("id")) if isinstance(record, Mapping) else None
    return text if text and text.isascii() and text.isdigit() else None


def found_image(
    record: Mapping[str, Any],
    *,
    size: str,
    min_side: int,
    listed: IdItem | None = None,
    detail: Mapping[str, Any] | None = None,
) -> FoundImage | None:
    """The catalogue row for one record, or None if it has no usable id."""
    image_id = record_id(record)
    if image_id is None:
        return None
    field = thumb_field(size)
    geometry, heading, position = _pose(record)
    if geometry is None and listed is not None and None not in (listed.lon, listed.lat):
        geometry = (listed.lon or 0.0, listed.lat or 0.0)  # the list's own coordinates
    sequence = _ref(record.get("sequence")) or (listed.sequence_id if listed else None)
    creator = record.get("creator")
    width, height = positive(record.get("width")), positive(record.get("height"))
    captured = _ms(record.get("captured_at"))
    raw = {k: v for k, v in record.items() if k not in THUMB_FIELDS}
    raw[THUMB_NOTE] = field
    if position is not None:
        raw[POSITION_NOTE] = position
    return FoundImage(
        provider_id=image_id,
        group=group_name(sequence),
        file_name=file_name(image_id),
        source_url=_str(record.get(field)),
        record={
            "lat": geometry[1] if geometry else None,
            "lon": geometry[0] if geometry else None,
            "captured_at": instant(captured / 1000) if captured else None,
            "heading": heading,
            "is_pano": is_spherical(record),
            "sequence_id": sequence,
            "owner": _ref(creator),
            "owner_name": _str(creator.get("username")) if isinstance(creator, dict) else None,
            "license_id": LICENSE_ID,
            "source_width": width,
            "source_height": height,
            "raw": raw,
        },
        skip_reason=_too_small(width, height, min_side),
        role=listed.role if listed else None,
        hit_detail=detail,
    )


def group_name(sequence: str | None) -> str:
    """The directory of a sequence: its id as is (ids are case-sensitive), slugged if odd."""
    if not sequence:
        return NO_SEQUENCE
    return sequence if _SAFE_GROUP.fullmatch(sequence) else slug(sequence)


def _too_small(width: int | None, height: int | None, min_side: int) -> str | None:
    if width is None or height is None or min(width, height) >= min_side:
        return None
    return f"too_small: original {width}x{height} is below the minimum side of {min_side} px"


def _pose(record: Mapping[str, Any]) -> tuple[tuple[float, float] | None, float | None, str | None]:
    """(lon, lat), heading and, when the reconstruction's position was set aside, why.

    The structure-from-motion solution (computed_geometry, computed_compass_angle) is
    preferred, position and heading from the same solution; but a computed position more
    than MAX_COMPUTED_SHIFT_M from the camera's own fix is a reconstruction gone wrong
    (Mapillary's computed positions are at times wildly off), so the camera's position
    and compass angle are kept instead, and the row's raw record says so."""
    camera = _point(record.get("geometry"))
    computed = _point(record.get("computed_geometry"))
    camera_heading = _heading(record.get("compass_angle"))
    if computed is not None and camera is not None:
        shift = distance_m(computed[1], computed[0], camera[1], camera[0])
        if shift > MAX_COMPUTED_SHIFT_M:
            return camera, camera_heading, SHIFT_REFUSED
    computed_heading = _heading(record.get("computed_compass_angle"))
    heading = computed_heading if computed_heading is not None else camera_heading
    return computed or camera, heading, None


def _point(value: Any) -> tuple[float, float] | None:
    """(lon, lat) from a GeoJSON Point."""
    if not isinstance(value, dict):
        return None
    coords = value.get("coordinates")
    if not isinstance(coords, list | tuple) or len(coords) < 2:
        return None
    lon, lat = number(coords[0]), number(coords[1])
    if lon is None or lat is None or abs(lon) > 180 or abs(lat) > 90:
        return None
    return lon, lat


def _ref(value: Any) -> str | None:
    """An id given bare or as `{"id": ...}`."""
    return identifier(value.get("id") if isinstance(value, dict) else value)


def _str(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return value.strip() or None


def _heading(value: Any) -> float | None:
    """A compass angle in degrees, 0 to 360 (360 read as 0); anything else is no heading."""
    angle = number(value)
    return angle % 360 if angle is not None and 0 <= angle <= 360 else None


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    if isinstance(value, int):
        return bool(value)
    return None


def _ms(value: Any) -> int | None:
    """Capture time in ms since the epoch, from a number, digits or an ISO 8601 string."""
    ms = number(value)
    if ms is None and isinstance(value, str) and len(value) <= 40:
        try:
            when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return int(when.timestamp() * 1000)
        except (ValueError, OverflowError):  # not a date; one no UTC offset fits
            return None
    return int(ms) if ms is not None and ms > 0 else None


def _date(value: Any) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _day_ms(day: date) -> int:
    return int(datetime.combine(day, time(0), UTC).timestamp() * 1000)


def _iso(ms: int) -> str:
    """The documented form, `2022-08-16T16:42:46Z`: no fraction of a second."""
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
