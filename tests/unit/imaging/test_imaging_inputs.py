"""Hostile bodies, header-only probing, and the EXIF written into stored files."""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from imaging_helpers import decode, encode
from PIL import Image
from PIL.ExifTags import GPS, IFD, Base

from harvester.emulator.images import HOSTILE_KINDS, hostile
from harvester.imaging import (
    CorruptImage,
    DecompressionBomb,
    ImagingError,
    Metadata,
    SizeRules,
    UnsupportedFormat,
    probe,
    process,
)

RULES = SizeRules()

EXPECTED_HOSTILE = {
    "truncated": (CorruptImage, "truncated"),
    "empty": (CorruptImage, "empty"),
    "html": (UnsupportedFormat, "html"),
    "bomb": (DecompressionBomb, "bomb"),
    "garbage": (UnsupportedFormat, "unknown_format"),
}


def test_every_hostile_kind_is_covered() -> None:
    assert set(EXPECTED_HOSTILE) == set(HOSTILE_KINDS)


@pytest.mark.parametrize("kind", HOSTILE_KINDS)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_hostile_body_raises_its_imaging_error(kind: str, seed: int) -> None:
    body, _ = hostile(kind, seed)
    error_type, reason = EXPECTED_HOSTILE[kind]

    with pytest.raises(error_type) as caught:
        process(body, RULES, Metadata())

    assert caught.value.reason == reason
    assert caught.value.permanent


def test_decoder_failure_keeps_the_decoder_error_as_cause() -> None:
    body, _ = hostile("truncated", 4)

    with pytest.raises(CorruptImage) as caught:
        process(body, RULES, Metadata())

    # Pillow's OSError, or simplejpeg's ValueError for a colour JPEG
    assert isinstance(caught.value.__cause__, (OSError, ValueError))


def test_other_image_formats_are_refused_without_their_decoders(
    photo_pixels: Callable[..., Image.Image],
) -> None:
    im = photo_pixels(seed=1)
    for fmt in ("GIF", "TIFF", "BMP"):
        with pytest.raises(UnsupportedFormat) as caught:
            process(encode(im, fmt), RULES, Metadata())
        assert caught.value.reason == "not_an_image"


def test_corrupt_header_is_a_corrupt_image() -> None:
    with pytest.raises(CorruptImage) as caught:
        process(b"\xff\xd8\xff\xe0" + b"\x00" * 40, RULES, Metadata())

    assert caught.value.reason == "bad_header"


def _header_only(jpeg: bytes) -> bytes:
    """The JPEG up to and including its scan header: dimensions, no pixels."""
    sos = jpeg.index(b"\xff\xda")
    length = int.from_bytes(jpeg[sos + 2 : sos + 4], "big")
    return jpeg[: sos + 2 + length]


def test_probe_reads_dimensions_without_pixel_data(photo: Callable[..., bytes]) -> None:
    header = _header_only(photo(width=2048, height=1536))

    assert probe(header) == ("jpeg", 2048, 1536)
    with pytest.raises(CorruptImage):
        process(header, RULES, Metadata())


def test_probe_reports_upright_size_and_other_formats(photo: Callable[..., bytes]) -> None:
    assert probe(photo(width=900, height=600, exif_orientation=6)) == ("jpeg", 900, 600)
    assert probe(photo(width=900, height=600, fmt="png")) == ("png", 900, 600)
    assert probe(photo(width=900, height=600, fmt="webp")) == ("webp", 900, 600)


def test_probe_refuses_what_process_refuses() -> None:
    for kind in ("empty", "html", "garbage", "bomb"):
        with pytest.raises(ImagingError):
            probe(hostile(kind, 1)[0])


def test_pixel_limit_is_enforced_from_the_header_before_decoding(
    photo: Callable[..., bytes],
) -> None:
    header = _header_only(photo(width=2048, height=1536))

    with pytest.raises(DecompressionBomb) as caught:
        process(header, SizeRules(max_pixels=2_000_000), Metadata())

    assert "2048x1536" in str(caught.value)


META = Metadata(
    lat=-33.856784,
    lon=151.215297,
    heading=287.5,
    captured_at=datetime(2019, 7, 14, 16, 5, 9, tzinfo=timezone(timedelta(hours=10))),
    artist="Ana Núñez",
    copyright="CC BY-SA 2.0",
    description={"provider": "flickr", "id": "315157387", "title": "Ópera", "tags": ["a", "b"]},
)


def _degrees(dms: tuple[float, float, float], ref: str) -> float:
    value = float(dms[0]) + float(dms[1]) / 60 + float(dms[2]) / 3600
    return -value if ref in ("S", "W") else value


def _utf8(pillow_text: str) -> str:
    """Pillow reads EXIF text as Latin-1; the writer stored UTF-8."""
    return pillow_text.encode("latin-1").decode("utf-8")


def test_metadata_round_trips_through_exif(photo: Callable[..., bytes]) -> None:
    exif = decode(process(photo(seed=3), RULES, META).jpeg).getexif()
    gps = exif.get_ifd(IFD.GPSInfo)
    sub = exif.get_ifd(IFD.Exif)

    assert _degrees(gps[GPS.GPSLatitude], gps[GPS.GPSLatitudeRef]) == pytest.approx(
        -33.856784, abs=1e-6
    )
    assert _degrees(gps[GPS.GPSLongitude], gps[GPS.GPSLongitudeRef]) == pytest.approx(
        151.215297, abs=1e-6
    )
    assert float(gps[GPS.GPSImgDirection]) == pytest.approx(287.5)
    assert gps[GPS.GPSImgDirectionRef] == "T"
    assert sub[Base.DateTimeOriginal] == "2019:07:14 16:05:09"
    assert sub[Base.OffsetTimeOriginal] == "+10:00"
    assert _utf8(exif[Base.Artist]) == "Ana Núñez"
    assert exif[Base.Copyright] == "CC BY-SA 2.0"
    assert json.loads(exif[Base.ImageDescription]) == META.description


@pytest.mark.parametrize(("heading", "written"), [(359.996, 0.0), (-0.5, 359.5), (720.25, 0.25)])
def test_a_heading_is_written_within_exifs_range(
    photo: Callable[..., bytes], heading: float, written: float
) -> None:
    meta = Metadata(lat=50.85, lon=4.35, heading=heading)
    gps = decode(process(photo(seed=3), RULES, meta).jpeg).getexif().get_ifd(IFD.GPSInfo)
    assert float(gps[GPS.GPSImgDirection]) == pytest.approx(written)


def test_west_and_north_coordinates_get_their_refs(photo: Callable[..., bytes]) -> None:
    meta = Metadata(lat=47.6062095, lon=-122.3320708, captured_at=datetime(2021, 1, 2, 3, 4, 5))
    exif = decode(process(photo(seed=3), RULES, meta).jpeg).getexif()
    gps = exif.get_ifd(IFD.GPSInfo)

    assert gps[GPS.GPSLatitudeRef] == "N"
    assert gps[GPS.GPSLongitudeRef] == "W"
    assert _degrees(gps[GPS.GPSLongitude], "W") == pytest.approx(-122.3320708, abs=1e-6)
    assert GPS.GPSImgDirection not in gps
    assert Base.OffsetTimeOriginal not in exif.get_ifd(IFD.Exif)


def test_missing_metadata_writes_no_empty_tags(photo: Callable[..., bytes]) -> None:
    exif = decode(process(photo(seed=3), RULES, Metadata()).jpeg).getexif()

    assert not exif.get_ifd(IFD.GPSInfo)
    assert Base.Artist not in exif


def test_description_too_large_for_exif_is_left_out(photo: Callable[..., bytes]) -> None:
    meta = Metadata(
        artist="x", captured_at=datetime(2020, 1, 1, tzinfo=UTC), description={"text": "y" * 70_000}
    )

    exif = decode(process(photo(seed=3), RULES, meta).jpeg).getexif()

    assert exif[Base.Artist] == "x"
    assert Base.ImageDescription not in exif


def test_damaged_bytes_never_escape_as_a_pillow_error(photo: Callable[..., bytes]) -> None:
    rng = random.Random(7)
    bases = [photo(width=640, height=520, fmt=fmt) for fmt in ("jpeg", "png", "webp")]
    for _ in range(60):
        body = bytearray(rng.choice(bases))
        for _ in range(rng.randint(1, 12)):
            body[rng.randrange(min(len(body), 2000))] = rng.randrange(256)
        if rng.random() < 0.3:
            body = body[: rng.randrange(len(body))]
        with contextlib.suppress(ImagingError):
            process(bytes(body), RULES, Metadata())


@pytest.mark.parametrize(
    "fields",
    [{}, {"width": 800, "height": 600}, {"progressive": True}, {"exif_orientation": 6},
     {"cmyk": True}],
    ids=["resized", "kept", "progressive", "rotated", "cmyk"],
)  # fmt: skip
def test_a_jpeg_missing_only_its_end_marker_is_stored_whole(
    photo: Callable[..., bytes], fields: dict[str, object]
) -> None:
    """Every scan there and only the closing FFD9 gone (as some cameras and uploaders
    write them, and browsers show them): the picture is whole, and the file stored ends."""
    whole = photo(**fields)
    assert whole.endswith(b"\xff\xd9")
    expected = process(whole, RULES, Metadata())
    stored = process(whole[:-2], RULES, Metadata())
    assert stored.jpeg.endswith(b"\xff\xd9")
    assert (stored.width, stored.height) == (expected.width, expected.height)
    assert decode(stored.jpeg).tobytes() == decode(expected.jpeg).tobytes()


@pytest.mark.parametrize("fields", [{}, {"progressive": True}])
def test_a_jpeg_cut_inside_its_data_is_still_truncated_with_or_without_an_end_marker(
    photo: Callable[..., bytes], fields: dict[str, object]
) -> None:
    whole = photo(**fields)
    half = whole[: len(whole) // 2]
    with pytest.raises(CorruptImage) as caught:
        process(half, RULES, Metadata())
    assert caught.value.reason == "truncated"
    with pytest.raises(CorruptImage):
        process(half + b"\xff\xd9", RULES, Metadata())
