"""Graph answers: error objects classified once, batch shapes, pair details kept."""

from __future__ import annotations

import pickle

import pytest

from harvester.http import (
    BadResponseError,
    BboxTooLargeError,
    FieldRetiredError,
    InvalidCredentials,
    NotFoundError,
    PermanentHttpError,
    RateLimitedError,
    ServiceUnavailableError,
    TooMuchDataError,
    TransientHttpError,
    graph_body_errors,
    graph_error,
)
from harvester.sources.mapillary import _batch_records, _pair_detail
from harvester.sources.mapillary_csv import IdItem

URL = "https://graph.example/images"


@pytest.mark.parametrize(
    ("error", "status", "expected"),
    [
        ({"type": "OAuthException", "code": 190, "message": "Invalid token"}, 401,
         InvalidCredentials),
        ({"type": "MLYApiException", "code": 4}, 400, RateLimitedError),
        ({"type": "OAuthException", "code": 17}, 403, RateLimitedError),
        ({"type": "MLYApiException", "code": "613"}, 400, RateLimitedError),
        ({"type": "MLYApiException", "code": 613}, 200, RateLimitedError),
        ({"type": "MLYApiException", "code": 2}, 500, ServiceUnavailableError),
        # Graph's other throttles: the error-handling guide's 341 and 368, the business use
        # case limits, and any error it marks transient.
        ({"type": "OAuthException", "code": 341, "message": "Application limit reached"}, 400,
         RateLimitedError),
        ({"type": "OAuthException", "code": 368}, 403, RateLimitedError),
        ({"type": "OAuthException", "code": 32}, 403, RateLimitedError),
        ({"type": "OAuthException", "code": 80000}, 400, RateLimitedError),
        ({"type": "OAuthException", "code": "80014"}, 400, RateLimitedError),
        ({"type": "OAuthException", "code": 80015}, 400, PermanentHttpError),
        ({"type": "OAuthException", "code": -2, "is_transient": True}, 400, TransientHttpError),
        ({"type": "OAuthException", "code": 100, "is_transient": "yes"}, 400, PermanentHttpError),
        ({"type": "OAuthException", "code": 190, "is_transient": True}, 401, InvalidCredentials),
        ({"type": "OAuthException", "code": 1, "message": "An unknown error occurred"}, 500,
         ServiceUnavailableError),
        # A dense box: the same request fails again, a smaller one works (not an outage).
        ({"type": "OAuthException", "code": 1, "message": "Please reduce the amount of data "
          "you're asking for, then retry your request"}, 500, TooMuchDataError),
        ({"type": "OAuthException", "code": 1, "error_subcode": 99,
          "message": "An unknown error occurred", "error_user_title": "Please reduce the "
          "amount of data", "error_user_msg": "Please reduce the amount of data you're asking "
          "for, then retry your request"}, 500, TooMuchDataError),
        ({"type": "OAuthException", "code": 100}, 400, PermanentHttpError),  # not a token error
        ({"type": "OAuthException", "code": 803}, 404, NotFoundError),
        # No such object, whatever the status: gone (or private), and only these say so.
        ({"type": "OAuthException", "code": 803}, 400, NotFoundError),
        ({"type": "GraphMethodException", "code": 100, "error_subcode": 33}, 400, NotFoundError),
        ({"type": "GraphMethodException", "code": 100, "error_subcode": "33"}, 400,
         NotFoundError),
        ({"type": "GraphMethodException", "code": 100, "error_subcode": 34}, 400,
         PermanentHttpError),
        ({"type": "OAuthException", "code": 10}, 403, PermanentHttpError),
        ({}, 400, PermanentHttpError),
    ],
)  # fmt: skip
def test_graph_errors_are_classified_by_their_body_code_before_their_status(
    error: dict[str, object], status: int, expected: type[Exception]
) -> None:
    mapped = graph_error(error, url=URL, status=status)
    assert type(mapped) is expected and mapped.url == URL
    assert "Invalid token" not in str(mapped)  # Graph messages are not echoed


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        # The box over the search's size limit, however it is worded: a smaller box is the fix.
        ("Bbox is too large, each side must be smaller than 0.01 degrees", BboxTooLargeError),
        ("Bbox area is too large, please make it smaller than 0.01 square degrees",
         BboxTooLargeError),
        ("The bounding box exceeds the maximum area", BboxTooLargeError),
        # Other refusals of a search say nothing of the box's size.
        ("Tried accessing nonexisting field (thumb_1024_url) on node type (Image)",
         FieldRetiredError),
        ("Invalid bbox: min greater than max", PermanentHttpError),
        ("Application does not have permission for this action", PermanentHttpError),
    ],
)  # fmt: skip
def test_only_a_refusal_of_the_box_size_reads_as_a_box_too_large(
    message: str, expected: type[Exception]
) -> None:
    error = graph_error({"type": "MLYApiException", "code": 100, "message": message}, url=URL)
    assert type(error) is expected


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ("Tried accessing nonexisting field (creator) on node type (Image)", "creator"),
        ("(#100) Tried accessing nonexisting field (is_pano) on node type (Image)", "is_pano"),
        # Anything else names no field to drop: the refusal stands as itself.
        ("Tried accessing nonexisting field (creator) on node type (Image) and more", None),
        ("Tried accessing nonexisting field (creator,id) on node type (Image)", None),
        ("Tried accessing nonexisting field (Creator) on node type (Image)", None),
        ("Tried accessing nonexisting field () on node type (Image)", None),
        ("Please tried accessing nonexisting field (creator) on node type (Image)", None),
    ],
)  # fmt: skip
def test_a_field_graph_no_longer_serves_is_read_only_from_its_exact_refusal(
    message: str, field: str | None
) -> None:
    error = graph_error({"type": "GraphMethodException", "code": 100, "message": message},
                        url=URL, status=400)  # fmt: skip
    assert error.reason == "http_400"
    if field is None:
        assert type(error) is PermanentHttpError
    else:
        assert isinstance(error, FieldRetiredError) and error.field == field
        assert pickle.loads(pickle.dumps(error)).field == field  # it crosses the pool


def test_a_hostile_message_is_read_only_as_far_as_a_message_runs() -> None:
    message = "bbox " * 20_000 + "too large"  # the words apart by far more than a message
    error = graph_error({"code": 100, "message": message}, url=URL, status=400)
    assert type(error) is PermanentHttpError


def test_a_body_without_an_error_object_leaves_the_status_to_decide() -> None:
    assert graph_body_errors(400, b"<html>Bad Request</html>", URL) is None
    assert graph_body_errors(200, b'{"data": []}', URL) is None
    limited = graph_body_errors(403, b'{"error": {"code": 4, "type": "OAuthException"}}', URL)
    assert isinstance(limited, RateLimitedError) and limited.status == 403


def test_batch_answers_are_read_keyed_by_id_or_as_a_data_list() -> None:
    keyed = {"1": {"id": "1"}, "2": {"id": "2"}, "3": None}
    assert _batch_records(keyed, URL) == [{"id": "1"}, {"id": "2"}]
    assert _batch_records({"data": [{"id": "1"}, 5]}, URL) == [{"id": "1"}]
    with pytest.raises(BadResponseError):
        _batch_records(["not", "an", "object"], URL)


def test_an_image_in_several_pairs_keeps_every_pair() -> None:
    first = IdItem("1", "s", role="database", pair=3, other="9")
    second = IdItem("1", "s", role="database", pair=8, other="7")
    assert _pair_detail([first]) == {"pair": 3, "other": "9"}
    assert _pair_detail([first, second]) == {
        "pair": 3,
        "other": "9",
        "pairs": [
            {"pair": 3, "other": "9", "role": "database"},
            {"pair": 8, "other": "7", "role": "database"},
        ],
    }
    assert _pair_detail([IdItem("1", "s")]) is None
