"""A Graph collection read page by page: `paging.next` followed by its cursor, never replayed.

Graph pages a long collection, `{"data": [...], "paging": {"cursors": {"after": "..."},
"next": "https://graph.mapillary.com/images?...&after=..."}}`, and may write the caller's
token into that `next` URL as `access_token=`. The URL is never fetched as written: the
next page is the first request again with `after=` set, sent the same way (the token in
the Authorization header, redacted from every error and log). A `next` off the API's own
origin, or one without a cursor, is an answer not to follow.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
import yarl

from harvester.http import BadResponseError

log = structlog.get_logger("harvester.sources.mapillary")

MAX_PAGES = 200  # pages of one collection read; what is left past them is said, not read

Fetch = Callable[[Mapping[str, str]], Awaitable[Any]]


@dataclass(frozen=True)
class Collection:
    """A collection's items, and whether they are all of it (False: pages were left)."""

    items: list[Any]
    pages: int
    complete: bool

    def detail(self) -> dict[str, Any]:
        """What a task's result says of the pages read: how many, past one, and whether
        some were left unread."""
        detail: dict[str, Any] = {"pages": self.pages} if self.pages > 1 else {}
        if not self.complete:
            detail["capped"] = True
        return detail


async def collect(fetch: Fetch, params: Mapping[str, str], *, api: str, shown: str) -> Collection:
    """Every page of the collection `fetch(params)` starts, up to MAX_PAGES; a cursor that
    comes round again ends it as left unread too."""
    body = await fetch(params)
    items, pages = list(data(body, shown)), 1
    seen: set[str] = set()
    while (after := next_cursor(body, api, shown)) is not None:
        if pages >= MAX_PAGES or after in seen:
            log.warning("collection_cut", url=shown, pages=pages)
            return Collection(items, pages, complete=False)
        seen.add(after)
        body = await fetch({**params, "after": after})
        items += data(body, shown)
        pages += 1
    return Collection(items, pages, complete=True)


def data(body: Any, shown: str) -> list[Any]:
    """The `data` list of a Graph answer."""
    items = body.get("data") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise BadResponseError(f"Graph answer without a data list from {shown}", url=shown)
    return items


def next_cursor(body: Any, api: str, shown: str) -> str | None:
    """The `after` cursor of the next page; None on the last page (no `paging.next`)."""
    paging = body.get("paging") if isinstance(body, dict) else None
    if not isinstance(paging, dict) or paging.get("next") is None:
        return None
    url = _url(paging["next"])
    if url is None or url.origin() != yarl.URL(api).origin():
        where = url.host if url is not None else "an unreadable URL"
        message = f"Graph's next page is off the API ({where}) from {shown}"
        raise BadResponseError(message, url=shown)
    cursors = paging.get("cursors")
    after = cursors.get("after") if isinstance(cursors, dict) else None
    if not isinstance(after, str) or not after:
        after = url.query.get("after")
    if not after:
        raise BadResponseError(f"Graph's next page has no cursor from {shown}", url=shown)
    return after


def _url(link: Any) -> yarl.URL | None:
    if not isinstance(link, str):
        return None
    try:
        url = yarl.URL(link)
    except ValueError:
        return None
    return url if url.is_absolute() and url.scheme in ("http", "https") else None
