"""One hostile field in one record: the parsers drop that field (or that record), never raise.

Every value here has been, or could be, in a provider's JSON: a capture time in µs or 1e30,
numbers as strings, booleans, nested objects where a scalar belongs and the other way round.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from test_flickr_parse import photo
from test_mapillary_records import _record

from harvester.records import FoundImage
from harvester.sources import flickr_parse, mapillary_records, urls
from harvester.sources.mapillary import _images
from harvester.sources.mapillary_records import Filters, is_spherical, record_id

INT32 = 2**31 - 1
HOSTILE: list[Any] = [
    1e30, -1e30, -1, 0, 1.6e15, 1.6e18, 10**30, 10**400, float("nan"), float("inf"), "NaN",
    "Infinity", "-Infinity", "abc", "1.5e12", "", " ", "\x00", "a\x00b", "\ud800", "9" * 400,
    "1" * 5000, True, False, None, [1, 2], [], {"a": 1}, {"id": {"id": 1}}, {"_content": [1]},
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2020-13-45", "-5",
]  # fmt: skip


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 24 else f"{text[:16]}...({len(text)})"


MAPILLARY_FIELDS = (
    "id", "captured_at", "compass_angle", "computed_compass_angle", "geometry",
    "computed_geometry", "camera_type", "is_pano", "sequence", "creator", "width", "height",
    "thumb_1024_url",
)  # fmt: skip
FLICKR_FIELDS = (
    "id", "owner", "secret", "server", "title", "tags", "license", "dateupload", "datetaken",
    "datetakengranularity", "datetakenunknown", "ownername", "latitude", "longitude",
    "accuracy", "url_l", "width_l", "height_l", "url_o", "o_width", "o_height", "width_o",
    "url_k", "width_k", "originalformat",
)  # fmt: skip


def _sane(image: FoundImage) -> None:
    """What a row may hold whatever the record said: values in range, ids a file can carry."""
    assert 0 < len(image.provider_id) <= 100 and image.provider_id.isprintable()
    row = image.record
    for column in ("captured_at", "uploaded_at"):
        when = row.get(column)
        assert when is None or (isinstance(when, datetime) and when.tzinfo is not None)
    for column in ("source_width", "source_height", "accuracy"):
        number = row.get(column)
        assert number is None or (type(number) is int and 0 < number <= INT32), (column, number)
    heading = row.get("heading")
    assert heading is None or 0 <= heading < 360
    lat, lon = row.get("lat"), row.get("lon")
    assert (lat is None) == (lon is None)
    assert lat is None or (-90 <= lat <= 90 and -180 <= lon <= 180)
    for column in ("sequence_id", "owner", "owner_name", "title", "tags", "license_id"):
        assert row.get(column) is None or type(row.get(column)) is str, column
    local = row.get("captured_local")
    assert local is None or (type(local) is str and len(local) <= 19)
    assert image.source_url is None or type(image.source_url) is str


@pytest.mark.parametrize("value", HOSTILE, ids=_short)
@pytest.mark.parametrize("field", MAPILLARY_FIELDS)
def test_a_hostile_mapillary_field_is_dropped_not_raised(field: str, value: Any) -> None:
    record = _record(**{field: value})
    for filters in (Filters(), Filters(pano_only=True), Filters(start_ms=1, end_ms=2**62)):
        filters.keeps(record)
    is_spherical(record)
    record_id(record)
    image = mapillary_records.found_image(record, size="1024", min_side=500)
    if field == "id":
        assert image is None or image.provider_id.isdigit()
    else:
        assert image is not None and image.provider_id == "123456789"
    if image is not None:
        _sane(image)


@pytest.mark.parametrize("value", HOSTILE, ids=_short)
@pytest.mark.parametrize("field", FLICKR_FIELDS)
def test_a_hostile_flickr_field_is_dropped_not_raised(field: str, value: Any) -> None:
    record = photo(**{field: value})
    flickr_parse.NegativeTerms(["bridge"]).matches(record)
    for max_side in (1024, 4096):
        image = flickr_parse.found_image(record, "q", min_side=500, max_side=max_side)
        if field not in ("id", "owner", "secret", "server"):
            assert image is not None and image.provider_id == "5301"
        if image is not None:
            _sane(image)


@pytest.mark.parametrize("junk", [*HOSTILE, "123", 123], ids=_short)
def test_a_page_entry_that_is_no_record_is_counted_and_the_page_kept(junk: Any) -> None:
    page = [_record(id="1"), junk, _record(id="2", captured_at=1e30, camera_type=[1])]
    images, result = _images(page, "1024", 500, Filters(pano_only=False))
    assert [i.provider_id for i in images] == ["1", "2"]
    assert result["returned"] == 3 and result.get("malformed") == 1
    assert record_id(junk) is None  # a bare id is not a record (a sequence's list has objects)


@pytest.mark.parametrize("value", HOSTILE, ids=_short)
@pytest.mark.parametrize("column", ("id", "url", "lat", "lon", "captured_at", "license", "owner"))
def test_a_hostile_url_list_cell_is_that_rows_reason_or_dropped(column: str, value: Any) -> None:
    row = {"url": "http://cdn.test/a.jpg", "lat": "48.85", "lon": "2.35", column: value}
    try:  # a CSV gives text, a Parquet file typed values: both are read
        image = urls.parse_row(row, "list")
    except ValueError:
        return  # the row is reported by its line number; the rest of the file is read
    _sane(image)
