"""Graph's paging read for its cursor: off-origin or cursorless `next` refused, loops cut."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from harvester.http import BadResponseError
from harvester.sources.mapillary_pages import MAX_PAGES, collect, next_cursor

API = "https://graph.mapillary.com"
SHOWN = f"{API}/images"


def _page(after: str | None, link: str | None = None) -> dict[str, Any]:
    paging: dict[str, Any] = {}
    if after is not None:
        paging["cursors"] = {"after": after}
    if link is not None:
        paging["next"] = link
    return {"data": [{"id": "1"}], "paging": paging}


def test_the_cursor_is_read_from_the_paging_or_else_from_the_next_url() -> None:
    token_link = f"{API}/images?bbox=1,2,3,4&after=QUZ&access_token=MLY|1|secret"
    assert next_cursor(_page("QUJD", token_link), API, SHOWN) == "QUJD"
    assert next_cursor(_page(None, token_link), API, SHOWN) == "QUZ"
    assert next_cursor(_page("QUJD"), API, SHOWN) is None  # cursors without next: the end
    assert next_cursor({"data": []}, API, SHOWN) is None


@pytest.mark.parametrize(
    "link",
    [
        "https://graph.example.net/images?after=QUJD",
        "http://graph.mapillary.com/images?after=QUJD",
        "/images?after=QUJD",
        "https://graph.mapillary.com/images",  # no cursor anywhere
        42,
    ],
)
def test_a_next_page_off_the_api_or_without_a_cursor_is_not_followed(link: object) -> None:
    body = {"data": [], "paging": {"next": link}}
    with pytest.raises(BadResponseError) as caught:
        next_cursor(body, API, SHOWN)
    assert "secret" not in str(caught.value)


async def test_a_cursor_that_comes_round_again_ends_the_collection_as_cut() -> None:
    asked: list[Mapping[str, str]] = []

    async def fetch(params: Mapping[str, str]) -> Any:
        asked.append(params)
        cursor = "B" if params.get("after") == "A" else "A"
        return _page(cursor, f"{API}/images?after={cursor}")

    found = await collect(fetch, {"bbox": "1,2,3,4"}, api=API, shown=SHOWN)
    assert not found.complete and found.pages == 3 and len(found.items) == 3
    assert [p.get("after") for p in asked] == [None, "A", "B"]


async def test_a_collection_stops_after_max_pages() -> None:
    async def fetch(params: Mapping[str, str]) -> Any:
        cursor = str(int(params.get("after", "0")) + 1)
        return _page(cursor, f"{API}/images?after={cursor}")

    found = await collect(fetch, {}, api=API, shown=SHOWN)
    assert not found.complete and found.pages == MAX_PAGES == len(found.items)
