"""What a source is to the daemon: it turns a query task into image rows, and fetches bytes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from harvester.http import Body, HttpClient, NotFoundError
from harvester.records import Expansion


def local_capture_time(captured_local: str | None) -> datetime | None:
    """A row's zone-less capture time (Flickr's `datetaken`) as a naive datetime, when it is
    known to the second; a month or a year alone is no time a file's EXIF can carry."""
    if captured_local is None or len(captured_local) != len("2019-05-04T12:30:00"):
        return None
    try:
        return datetime.fromisoformat(captured_local)
    except ValueError:
        return None


@dataclass(frozen=True)
class TaskView:
    """The columns of a claimed task a source may read."""

    id: int
    campaign_id: int
    kind: str
    payload: Mapping[str, Any]
    attempts: int
    max_attempts: int | None = None  # None: not known, never the last try

    @property
    def last_try(self) -> bool:
        """This run is the task's last: a doubtful answer is taken as it is, not retried."""
        return self.max_attempts is not None and self.attempts >= self.max_attempts


@dataclass(frozen=True)
class ImageView:
    """The columns of a claimed image row a source needs to fetch it."""

    id: int
    campaign_id: int
    provider: str
    provider_id: str
    source_url: str | None
    raw: Mapping[str, Any] | None


class Source(Protocol):
    provider: str
    kinds: frozenset[str]

    async def expand(self, task: TaskView, campaign: Mapping[str, Any]) -> Expansion:
        """Run the query of one task. Raise HttpError subclasses for the queue to classify."""
        ...

    async def fetch(self, image: ImageView) -> Body:
        """The image's body, refreshing an expired URL where the provider allows it."""
        ...

    def page_url(self, image: ImageView) -> str | None:
        """The public page of the photo, written into the file's description."""
        ...


async def fetch_plain(http: HttpClient, image: ImageView, **options: Any) -> Body:
    """The default fetch: the row's URL, no credentials."""
    if not image.source_url:
        raise NotFoundError(f"image {image.id} has no source URL", url="", status=None)
    return await http.fetch(image.source_url, **options)
