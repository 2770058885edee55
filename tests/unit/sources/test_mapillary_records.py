"""Graph records to catalogue rows: the fields kept, leniency, filters."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from harvester.sources.mapillary_csv import IdItem
from harvester.sources.mapillary_records import (
    LICENSE_ID,
    THUMB_NOTE,
    Filters,
    fields_for,
    found_image,
    group_name,
)

CAPTURED_MS = 1_600_000_000_123


def _record(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": "123456789",
        "captured_at": CAPTURED_MS,
        "compass_angle": 90.5,
        "computed_compass_angle": 92.25,
        "geometry": {"type": "Point", "coordinates": [2.35, 48.85]},
        "computed_geometry": {"type": "Point", "coordinates": [2.3501, 48.8501]},
        "camera_type": "spherical",
        "is_pano": True,
        "sequence": "AbCdEfGhIjKlMnOpQrStUv",
        "creator": {"id": "100000000000001", "username": "andre_a"},
        "width": 4096,
        "height": 2048,
        "thumb_1024_url": "https://cdn.example/t1024.jpg?oh=sig&oe=FFFF",
        "thumb_2048_url": "https://cdn.example/t2048.jpg?oh=sig&oe=FFFF",
    }
    record.update(overrides)
    return {k: v for k, v in record.items() if v is not None}


def test_a_full_record_becomes_a_row_with_every_kept_field() -> None:
    image = found_image(_record(), size="1024", min_side=500)
    assert image is not None
    assert image.provider_id == "123456789" and image.file_name == "123456789.jpg"
    assert image.group == "AbCdEfGhIjKlMnOpQrStUv"  # case kept: sequence ids are case-sensitive
    assert image.source_url == "https://cdn.example/t1024.jpg?oh=sig&oe=FFFF"
    record = dict(image.record)
    raw = record.pop("raw")
    assert record == {
        "lat": 48.8501,  # computed_geometry, as the heading is computed_compass_angle
        "lon": 2.3501,
        "captured_at": datetime(2020, 9, 13, 12, 26, 40, 123000, tzinfo=UTC),
        "heading": 92.25,
        "is_pano": True,
        "sequence_id": "AbCdEfGhIjKlMnOpQrStUv",
        "owner": "100000000000001",
        "owner_name": "andre_a",
        "license_id": LICENSE_ID,
        "source_width": 4096,
        "source_height": 2048,
    }
    assert "thumb_1024_url" not in raw and "thumb_2048_url" not in raw
    assert raw["computed_geometry"]["coordinates"] == [2.3501, 48.8501]
    assert raw["compass_angle"] == 90.5 and raw[THUMB_NOTE] == "thumb_1024_url"
    assert image.skip_reason is None


def test_the_camera_geometry_is_the_fallback_when_none_was_computed() -> None:
    image = found_image(_record(computed_geometry=None), size="1024", min_side=500)
    assert image is not None and (image.record["lat"], image.record["lon"]) == (48.85, 2.35)


def test_strings_objects_and_missing_fields_are_read_leniently() -> None:
    record = _record(
        id=987,
        captured_at=str(CAPTURED_MS),
        computed_compass_angle=None,
        compass_angle="45.0",
        geometry=None,
        is_pano="false",
        camera_type="perspective",
        sequence={"id": "seq-1"},
        creator=None,
        width="1920",
        height="1080",
    )
    image = found_image(record, size="2048", min_side=500)
    assert image is not None
    assert image.provider_id == "987"
    assert (image.record["lat"], image.record["lon"]) == (48.8501, 2.3501)
    assert image.record["heading"] == 45.0 and image.record["is_pano"] is False
    assert image.record["sequence_id"] == "seq-1" and image.record["owner"] is None
    assert image.record["source_width"] == 1920
    assert image.source_url == "https://cdn.example/t2048.jpg?oh=sig&oe=FFFF"


def test_a_record_without_a_usable_id_is_dropped() -> None:
    assert found_image(_record(id=None), size="1024", min_side=500) is None
    assert found_image(_record(id="../etc"), size="1024", min_side=500) is None


def test_a_listed_image_falls_back_to_the_lists_sequence_and_coordinates() -> None:
    record = {"id": "5", "thumb_1024_url": "https://cdn.example/5.jpg"}
    listed = IdItem("5", "listSeq", 36.1, 140.1, "query", 7, "4")
    image = found_image(record, size="1024", min_side=500, listed=listed, detail={"pair": 7})
    assert image is not None
    assert image.group == "listSeq" and image.role == "query" and image.hit_detail == {"pair": 7}
    assert (image.record["lat"], image.record["lon"]) == (36.1, 140.1)


def test_an_original_smaller_than_min_side_is_skipped_before_download() -> None:
    image = found_image(_record(width=640, height=480), size="1024", min_side=500)
    assert image is not None and image.skip_reason is not None
    assert image.skip_reason.startswith("too_small")


def test_odd_sequence_ids_still_make_safe_directories() -> None:
    assert group_name("AbC_d-9") == "AbC_d-9"
    assert group_name(None) == "no-sequence"
    assert "/" not in group_name("../../etc/passwd") and group_name("../..") != ".."


def test_pano_only_keeps_spherical_images_by_either_field() -> None:
    pano = Filters(pano_only=True)
    assert pano.keeps(_record())
    assert pano.keeps(_record(is_pano=None))  # camera_type alone says spherical
    assert pano.keeps(_record(is_pano=True, camera_type=None))
    assert pano.keeps(_record(is_pano=None, camera_type="equirectangular"))
    assert not pano.keeps(_record(is_pano=False, camera_type="perspective"))
    assert Filters().keeps(_record(is_pano=False, camera_type="fisheye"))


def test_capture_date_filter_includes_both_end_days() -> None:
    filters = Filters.of({"min_captured_at": "2020-09-13", "max_captured_at": "2020-09-13"})
    assert filters.keeps(_record())
    assert not Filters.of({"max_captured_at": "2020-09-12"}).keeps(_record())
    assert not Filters.of({"min_captured_at": date(2020, 9, 14)}).keeps(_record())
    assert not filters.keeps(_record(captured_at=None))
    assert not filters.keeps(_record(captured_at=str(1_600_041_600_000)))  # 09-14 00:00 UTC
    assert filters.keeps(_record(captured_at=str(1_600_041_599_999)))
    assert filters.search_params() == {
        "start_captured_at": "2020-09-13T00:00:00Z",
        "end_captured_at": "2020-09-14T00:00:00Z",  # exclusive here; `keeps` drops it
    }
    assert Filters(pano_only=True).search_params() == {"is_pano": "true"}


def test_requested_fields_name_the_chosen_thumbnail() -> None:
    fields = fields_for("original").split(",")
    assert fields[0] == "id" and fields[-1] == "thumb_original_url"
    assert {"computed_geometry", "computed_compass_angle", "creator", "camera_type"} <= set(fields)


def test_a_computed_position_far_from_the_cameras_fix_is_set_aside_with_its_heading() -> None:
    camera = {"type": "Point", "coordinates": [4.35, 50.85]}
    base = {"id": "7", "geometry": camera, "compass_angle": 10.0, "computed_compass_angle": 20.0}
    near = {**base, "computed_geometry": {"type": "Point", "coordinates": [4.3501, 50.85]}}
    far = {**base, "computed_geometry": {"type": "Point", "coordinates": [4.36, 50.85]}}
    kept = found_image(near, size="256", min_side=0)  # 7 m: a correction
    refused = found_image(far, size="256", min_side=0)  # 700 m: a merge gone wrong
    assert kept is not None and refused is not None
    assert (kept.record["lon"], kept.record["heading"]) == (4.3501, 20.0)
    assert "harvester_position" not in kept.record["raw"]
    assert (refused.record["lon"], refused.record["lat"], refused.record["heading"]) == (
        4.35,
        50.85,
        10.0,
    )
    assert refused.record["raw"]["harvester_position"].startswith("camera")
    assert refused.record["raw"]["computed_geometry"] == far["computed_geometry"]
