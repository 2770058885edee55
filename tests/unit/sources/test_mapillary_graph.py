"""Graph answers: error objects classified once, batch shapes, pair details kept."""

from __future__ import annotations

import pytest

from harvester.http import (
    BadResponseError,
    ForbiddenError,
    PermanentHttpError,
    RateLimitedError,
    TransientHttpError,
)
from harvester.sources.mapillary import _batch_records, _graph_error, _pair_detail
from harvester.sources.mapillary_csv import IdItem

URL = "https://graph.example/images"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"type": "OAuthException", "code": 190, "message": "Invalid token"}, ForbiddenError),
        ({"type": "MLYApiException", "code": 4}, RateLimitedError),
        ({"type": "MLYApiException", "code": 613}, RateLimitedError),
        ({"type": "MLYApiException", "code": 2}, TransientHttpError),
        ({"type": "MLYApiException", "code": 100}, PermanentHttpError),
        ({}, PermanentHttpError),
    ],
)
def test_graph_error_objects_map_onto_the_http_error_tree(
    error: dict[str, object], expected: type[Exception]
) -> None:
    mapped = _graph_error(error, URL)
    assert type(mapped) is expected and mapped.url == URL
    assert "Invalid token" not in str(mapped)  # Graph messages are not echoed


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
