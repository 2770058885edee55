"""Queries files and Flickr's answers are read leniently, and errors are classified."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest

from harvester.errors import InputError
from harvester.http import (
    InvalidCredentials,
    PermanentHttpError,
    ServiceUnavailableError,
    TransientHttpError,
    flickr_body_errors,
)
from harvester.sources.base import local_capture_time
from harvester.sources.flickr import FlickrCampaign, parse_queries
from harvester.sources.flickr_parse import (
    GIF_ONLY,
    NO_URL,
    SIZE_NOTE,
    NegativeTerms,
    check_stat,
    decode_body,
    found_image,
    geo,
    licenses_of,
    photo_id,
    search_page,
    taken_local,
    unix_time,
)

URL = "http://flickr.test/services/rest/?method=flickr.photos.search"
KEY = "secret-key-0123456789"


def photo(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "5301",
        "owner": "12345@N01",
        "secret": "abc123",
        "server": "7372",
        "title": "Old bridge",
        "tags": "bridge paris",
        "license": "4",
        "dateupload": "1600000000",
        "datetaken": "2019-05-04 12:30:00",
        "datetakenunknown": "0",
        "ownername": "Ana Berg",
        "views": "17",
        "latitude": "48.85",
        "longitude": "2.35",
        "accuracy": "16",
        "url_l": "http://cdn.test/l.jpg",
        "width_l": 1024,
        "height_l": "768",
        "url_o": "http://cdn.test/o.jpg",
        "o_width": "4000",
        "o_height": "3000",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


# -- queries file --------------------------------------------------------------------------


def test_queries_file_ignores_comments_and_blanks_and_collects_negatives() -> None:
    text = "# places\n\nEiffel  Tower\nsunset\n  -Night \n-wedding\nsunset\n# -not a negative\n"
    queries, negatives = parse_queries(text)
    assert queries == ("Eiffel Tower", "sunset")
    assert negatives == ("night", "wedding")


@pytest.mark.parametrize(
    ("text", "line"),
    [("sunset\n-\n", 2), ("a\nb\n--x\n", 3), ("ok\nbad\x00query\n", 2), ("x" * 201, 1)],
)
def test_a_bad_line_is_refused_naming_its_line(text: str, line: int) -> None:
    with pytest.raises(InputError, match=f"q.txt, line {line}"):
        parse_queries(text, source="q.txt")


def test_a_file_with_only_negatives_has_no_queries() -> None:
    with pytest.raises(InputError, match="no queries"):
        parse_queries("# nothing\n-night\n")


# -- campaign ------------------------------------------------------------------------------


def test_campaign_settings_carry_sizes_quality_and_a_fixed_end_date() -> None:
    campaign = FlickrCampaign("c", ("sunset",), licenses=("4", "5"), bbox=(2.0, 48.0, 3.0, 49.0))
    settings = campaign.settings(today=date(2024, 3, 1))
    assert settings["max_upload"] == "2024-03-01" and settings["min_upload"] == "2004-01-01"
    assert (settings["max_side"], settings["min_side"], settings["quality"]) == (1024, 500, 90)
    assert settings["licenses"] == ["4", "5"] and settings["bbox"] == [2.0, 48.0, 3.0, 49.0]


@pytest.mark.parametrize(
    "overrides",
    [
        {"queries": ()},
        {"accuracy": 0},
        {"target_per_window": 5000},
        {"min_side": 2000},
        {"licenses": ("cc-by",)},
        {"bbox": (3.0, 48.0, 2.0, 49.0)},
        {"min_upload": date(2020, 1, 1), "max_upload": date(2019, 1, 1)},
    ],
)
def test_campaign_refuses_senseless_settings(overrides: dict[str, Any]) -> None:
    fields: dict[str, Any] = {"name": "c", "queries": ("sunset",), **overrides}
    with pytest.raises(InputError):
        FlickrCampaign(**fields)


# -- bodies --------------------------------------------------------------------------------


def test_jsonp_wrapped_and_plain_bodies_decode_alike() -> None:
    plain = '{"stat":"ok","photos":{"total":"3"}}'
    assert decode_body(f"jsonFlickrApi({plain})", url=URL) == decode_body(plain, url=URL)


def test_a_body_that_is_not_json_is_a_transient_error() -> None:
    with pytest.raises(TransientHttpError):
        decode_body("<html>Flickr is having a massage</html>", url=URL)


def test_stat_fail_bad_key_is_permanent_and_never_shows_the_key() -> None:
    body = {"stat": "fail", "code": 100, "message": f"Invalid API Key ({KEY})"}
    with pytest.raises(InvalidCredentials) as caught:
        check_stat(body, url=URL, secrets=[KEY])
    assert isinstance(caught.value, PermanentHttpError) and KEY not in str(caught.value)
    assert caught.value.reason == "invalid_key"


def test_stat_fail_service_unavailable_is_an_outage() -> None:
    with pytest.raises(ServiceUnavailableError):
        check_stat({"stat": "fail", "code": "105", "message": "unavailable"}, url=URL, secrets=[])


def test_stat_fail_other_codes_are_permanent() -> None:
    with pytest.raises(PermanentHttpError):
        check_stat({"stat": "fail", "code": 3, "message": "no params"}, url=URL, secrets=[])


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        *((c, "query_refused") for c in (1, 2, 3, 4, 5, 11, 12, 17, 18, 116)),
        *((c, "request_refused") for c in (95, 96, 97, 111, 112, 114, 115)),
        (999, "flickr_error"),
        ("12345", "flickr_error"),
    ],
)
def test_each_permanent_flickr_code_has_a_reason_of_its_own_not_http_error(
    code: int | str, reason: str
) -> None:
    body = f'{{"stat": "fail", "code": {json.dumps(code)}, "message": "no"}}'.encode()
    error = flickr_body_errors([])(200, body, URL)
    assert isinstance(error, PermanentHttpError) and not isinstance(error, TransientHttpError)
    assert error.reason == reason
    assert str(code) in str(error)  # the number an operator looks up is in the message


def test_a_stat_fail_sent_with_5xx_leaves_an_unknown_code_to_the_status() -> None:
    # Flickr also sends `stat: fail` bodies with non-200 statuses; a code we do not know
    # must not turn "down" into a permanent failure. (A 429 is the client's to rule on.)
    read = flickr_body_errors([])
    unknown = b'{"stat": "fail", "code": 999, "message": "Sorry, try again later"}'
    assert read(503, unknown, URL) is None
    busy = b'{"stat": "fail", "code": 0, "message": "Sorry, not currently available."}'
    assert isinstance(read(503, busy, URL), ServiceUnavailableError)
    assert type(read(200, unknown, URL)) is PermanentHttpError
    assert type(read(400, unknown, URL)) is PermanentHttpError
    down = b'{"stat": "fail", "code": 105, "message": "Service currently unavailable"}'
    assert isinstance(read(502, down, URL), ServiceUnavailableError)


def test_search_page_reads_string_counts_and_ignores_junk_entries() -> None:
    body = {"photos": {"total": "1234", "pages": "5", "photo": [photo(), "junk", 7]}}
    page = search_page(body, url=URL)
    assert (page.total, page.pages, len(page.photos)) == (1234, 5, 1)


@pytest.mark.parametrize(
    "counts",
    [
        {"total": "", "pages": 0},  # flickrapi #109: stat ok for a search that matches
        {"pages": 0},
        {"total": "n/a", "pages": 1},
        {"total": "3", "pages": 0},
    ],
)
def test_a_search_page_whose_counts_cannot_be_trusted_is_a_bad_response(
    counts: dict[str, Any],
) -> None:
    for listed in ([], [photo()]):
        with pytest.raises(TransientHttpError) as caught:
            search_page({"photos": {**counts, "photo": listed}}, url=URL)
        assert caught.value.reason == "bad_response"
    with pytest.raises(TransientHttpError, match="0 pages of a search of 0 listing 1"):
        search_page({"photos": {"total": "0", "pages": 0, "photo": [photo()]}}, url=URL)


def test_a_search_nothing_matched_reads_as_empty() -> None:
    for total in ("0", 0):
        page = search_page({"photos": {"total": total, "pages": 0, "photo": []}}, url=URL)
        assert (page.total, page.pages, page.photos) == (0, 0, [])


def test_licenses_are_read_with_numeric_or_string_ids() -> None:
    body = {
        "licenses": {"license": [{"id": 4, "name": "BY", "url": "u"}, {"id": "0", "name": "A"}]}
    }
    assert licenses_of(body) == [("4", "BY", "u"), ("0", "A", None)]


# -- photo records -------------------------------------------------------------------------


def test_a_photo_becomes_a_catalog_row_with_its_record() -> None:
    image = found_image(photo(), "Eiffel Tower", min_side=500)
    assert image is not None
    assert image.provider_id == "5301" and image.group == "eiffel-tower"
    assert image.file_name == "5301_abc123_7372_12345@N01.jpg"
    assert image.source_url == "http://cdn.test/l.jpg" and image.skip_reason is None
    record = image.record
    assert (record["lat"], record["lon"], record["accuracy"]) == (48.85, 2.35, 16)
    assert record["uploaded_at"] == datetime.fromtimestamp(1_600_000_000, UTC)
    # datetaken has no zone: no UTC instant in the row, the wall clock in its own column.
    assert record["captured_at"] is None
    assert record["captured_local"] == "2019-05-04T12:30:00"
    assert local_capture_time(record["captured_local"]) == datetime(2019, 5, 4, 12, 30)
    assert record["raw"]["datetaken"] == "2019-05-04 12:30:00"
    assert (record["owner"], record["owner_name"], record["license_id"]) == (
        "12345@N01",
        "Ana Berg",
        "4",
    )
    assert (record["source_width"], record["source_height"]) == (4000, 3000)
    assert record["raw"]["views"] == "17"


def test_numbers_as_ints_or_strings_read_the_same() -> None:
    as_strings = found_image(photo(), "q", 500)
    as_ints = found_image(
        photo(latitude=48.85, longitude=2.35, accuracy=16, o_width=4000, dateupload=1600000000),
        "q",
        500,
    )
    assert as_strings is not None and as_ints is not None
    assert {k: v for k, v in as_strings.record.items() if k != "raw"} == {
        k: v for k, v in as_ints.record.items() if k != "raw"
    }


def test_zero_coordinates_mean_no_geo() -> None:
    assert geo({"latitude": 0, "longitude": "0", "accuracy": 0}) == (None, None, None)
    assert geo({}) == (None, None, None)
    assert geo({"latitude": "91", "longitude": "2"}) == (None, None, None)


def test_unknown_or_missing_taken_date_is_none() -> None:
    assert taken_local({"datetaken": "2019-05-04 12:30:00", "datetakenunknown": "1"}) is None
    for flag in (1, True, "true"):  # Flickr's JSON has turned numbers into booleans before
        assert taken_local({"datetaken": "2019-05-04 12:30:00", "datetakenunknown": flag}) is None
    assert taken_local({"datetaken": "2019-05-04 12:30:00", "datetakenunknown": False})
    assert taken_local({"datetaken": "0000-00-00 00:00:00", "datetakenunknown": 0}) is None
    assert taken_local({"datetaken": None, "datetakenunknown": None}) is None


@pytest.mark.parametrize(
    ("granularity", "taken", "expected"),
    [
        ("0", "2019-05-04 12:30:00", "2019-05-04T12:30:00"),
        (None, "2019-05-04 12:30:00", "2019-05-04T12:30:00"),
        (4, "2008-05-00 00:00:00", "2008-05"),
        ("4", "2008-05-01 00:00:00", "2008-05"),
        ("6", "1975-01-01 00:00:00", "1975"),
        ("8", "1950-01-01 00:00:00", None),  # circa: a guess, not claimed
        ("3", "2019-05-04 12:30:00", None),  # a granularity Flickr does not define
    ],
)
def test_taken_date_is_kept_to_the_precision_flickr_vouches_for(
    granularity: Any, taken: str, expected: str | None
) -> None:
    record = {"datetaken": taken, "datetakenunknown": "0", "datetakengranularity": granularity}
    assert taken_local(record) == expected
    image = found_image(photo(**record), "q", 500)
    assert image is not None and image.record["captured_local"] == expected
    full = expected is not None and len(expected) == 19
    assert (local_capture_time(expected) is not None) == full, "EXIF gets seconds or nothing"


def test_only_a_small_original_is_skipped_without_download() -> None:
    small = found_image(photo(url_l=None, o_width="640", o_height="427"), "q", 500)
    assert small is not None and small.skip_reason is not None and "640x427" in small.skip_reason
    assert small.source_url == "http://cdn.test/o.jpg"
    fine = found_image(photo(url_l=None, o_width="900", o_height="600"), "q", 500)
    assert fine is not None and fine.skip_reason is None


def test_a_photo_with_no_downloadable_size_is_skipped() -> None:
    image = found_image(photo(url_l=None, url_o=None, o_width=None, o_height=None), "q", 500)
    assert image is not None and image.skip_reason == NO_URL and image.source_url is None
    assert (image.record["source_width"], image.record["source_height"]) == (1024, 768)


def test_a_record_without_what_names_its_file_is_dropped() -> None:
    assert found_image(photo(secret=None), "q", 500) is None


def test_negative_terms_match_whole_words_in_title_tags_or_description() -> None:
    terms = NegativeTerms(["night", "new york"])
    assert terms.matches(photo(title="Paris at Night"))
    assert terms.matches(photo(tags="bridge night"))
    assert terms.matches({"description": {"_content": "seen from New York harbour"}})
    assert not terms.matches(photo(title="Nightingale"))
    assert not NegativeTerms([]).matches(photo(title="night"))


def test_without_large_or_original_the_biggest_medium_is_taken_and_the_reason_noted() -> None:
    sizes = {"url_c": "http://cdn.test/c.jpg", "width_c": 800, "height_c": "600"}
    sizes |= {"url_z": "http://cdn.test/z.jpg", "width_z": 640, "height_z": 480}
    medium = photo(url_l=None, url_o=None, **sizes)
    image = found_image(medium, "bridge", min_side=500)
    assert image is not None and image.source_url == "http://cdn.test/c.jpg"
    assert image.skip_reason is None
    assert "url_c" in image.record["raw"][SIZE_NOTE]
    only_z = found_image(
        photo(url_l=None, url_o=None, url_z="http://cdn.test/z.jpg", width_z=640, height_z=480),
        "bridge",
        min_side=400,
    )
    assert only_z is not None and only_z.source_url == "http://cdn.test/z.jpg"
    assert "url_z" in only_z.record["raw"][SIZE_NOTE]
    assert SIZE_NOTE not in (found_image(photo(), "bridge", 500) or medium).record["raw"]


def test_a_large_size_already_too_small_is_skipped_before_download() -> None:
    wide = found_image(photo(width_l=1024, height_l=300), "bridge", min_side=500)
    assert wide is not None and wide.skip_reason is not None
    assert wide.skip_reason.startswith("too_small: Large 1024x300 is below")
    nothing = found_image(photo(url_l=None, url_o=None), "bridge", min_side=500)
    assert nothing is not None and nothing.skip_reason == NO_URL and nothing.source_url is None


def test_a_gif_original_gives_way_to_a_medium_jpeg_when_there_is_no_large() -> None:
    # Originals keep their upload format (jpg, gif or png); the pipeline refuses GIFs, and
    # Flickr's sized versions of a GIF are JPEGs.
    medium = {"url_z": "http://cdn.test/z.jpg", "width_z": 640, "height_z": "480"}
    gif = photo(url_l=None, url_o="http://cdn.test/o.gif", originalformat="gif", **medium)
    image = found_image(gif, "bridge", min_side=400)
    assert image is not None and image.source_url == "http://cdn.test/z.jpg"
    assert "GIF original" in image.record["raw"][SIZE_NOTE]
    alone = found_image(photo(url_l=None, url_o="http://cdn.test/o.gif"), "bridge", 400)
    assert alone is not None and alone.source_url == "http://cdn.test/o.gif"  # nothing else
    assert alone.skip_reason == GIF_ONLY  # and that is refused: skipped, never downloaded
    large = found_image(photo(url_o="http://cdn.test/o.gif", **medium), "bridge", 400)
    assert large is not None and large.source_url == "http://cdn.test/l.jpg"


@pytest.mark.parametrize("text", ["9" * 5000, "[" * 100_000, '{"a":' * 100_000])
def test_json_beyond_the_parser_is_worth_another_try(text: str) -> None:
    with pytest.raises(TransientHttpError, match="beyond what the parser can hold"):
        decode_body(text, url=URL)


def test_counts_and_times_are_not_held_to_a_columns_width() -> None:
    # Only what a 32-bit column stores (widths, heights, accuracy) is bounded when read.
    huge = {"photos": {"total": str(2**33), "pages": "9000000000", "photo": []}}
    assert search_page(huge, url=URL).total == 2**33
    after_2038 = unix_time("2300000000")
    assert after_2038 is not None and after_2038.year == 2042


def test_a_photo_id_is_read_as_found_image_reads_it() -> None:
    assert photo_id({"id": {"_content": "123"}}) == "123" == photo_id({"id": 123})


def test_every_answer_that_is_not_a_json_object_is_a_bad_response() -> None:
    for text in ("<html>down</html>", "[1, 2]", "9" * 5000):
        with pytest.raises(TransientHttpError) as caught:
            decode_body(text, url=URL)
        assert caught.value.reason == "bad_response"
