"""What a source is to the daemon: it turns a query task into image rows, and fetches bytes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from harvester.db.catalog import FoundImage
from harvester.db.queue import NewTask
from harvester.http import HttpClient, NotFoundError

# Where a source notes, in an image's raw record, a capture time the provider gives as a
# wall clock with no time zone (Flickr's `datetaken`): ISO 8601 without an offset. The
# row's captured_at is a UTC instant, which such a time is not, so it stays empty.
LOCAL_TIME_NOTE = "harvester_taken_local"


def local_capture_time(raw: Mapping[str, Any] | None) -> datetime | None:
    """The zone-less capture time a source noted, as a naive datetime (None if none)."""
    text = (raw or {}).get(LOCAL_TIME_NOTE)
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo is None else None


@dataclass(frozen=True)
class TaskView:
    """The columns of a claimed task a source may read."""

    id: int
    campaign_id: int
    kind: str
    payload: Mapping[str, Any]
    attempts: int


@dataclass(frozen=True)
class ImageView:
    """The columns of a claimed image row a source needs to fetch it."""

    id: int
    campaign_id: int
    provider: str
    provider_id: str
    source_url: str | None
    raw: Mapping[str, Any] | None


@dataclass
class Expansion:
    """What one task produced: images (under the query that found them) and follow-up tasks."""

    query: str
    images: list[FoundImage] = field(default_factory=list)
    follow_up: list[NewTask] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)
    licenses: list[tuple[str, str, str | None]] = field(default_factory=list)


@dataclass(frozen=True)
class SubmitReport:
    """What a submit did: tasks queued (0 when re-submitted) and the input lines it refused."""

    campaign_id: int
    tasks_added: int
    problems: tuple[str, ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)


class Source(Protocol):
    provider: str
    kinds: frozenset[str]

    async def expand(self, task: TaskView, campaign: Mapping[str, Any]) -> Expansion:
        """Run the query of one task. Raise HttpError subclasses for the queue to classify."""
        ...

    async def fetch(self, image: ImageView) -> bytes:
        """The image's bytes, refreshing an expired URL where the provider allows it."""
        ...

    def page_url(self, image: ImageView) -> str | None:
        """The public page of the photo, written into the file's description."""
        ...


async def fetch_plain(http: HttpClient, image: ImageView, **options: Any) -> bytes:
    """The default fetch: the row's URL, no credentials."""
    if not image.source_url:
        raise NotFoundError(f"image {image.id} has no source URL", url="", status=None)
    body = await http.fetch(image.source_url, **options)
    return body.data
