"""The records sources produce and db/ writes: plain values, no I/O, nothing of the rest.

A source turns a provider's answer into these; one `db` call writes them. Keeping them
here (not in db/ or sources/) lets both sides share them without importing each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The widest integer a record's 32-bit columns hold (width, height, accuracy): a source reads
# a larger one as unknown, and db/ stores one it is given as NULL rather than fail the row.
INT32 = 2**31 - 1


@dataclass(frozen=True)
class FoundImage:
    """A photo a source found: where it will live, where to fetch it, what is known of it."""

    provider_id: str
    group: str
    file_name: str
    source_url: str | None
    record: Mapping[str, Any] = field(default_factory=dict)  # Image columns: lat, lon, raw...
    skip_reason: str | None = None  # "code: message", known unusable before any download
    role: str | None = None
    hit_detail: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class NewTask:
    kind: str
    dedupe_key: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    max_attempts: int | None = None


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
    """What a submit did: tasks and images queued (0 when re-submitted), rows read, and
    the input lines it refused."""

    campaign_id: int
    tasks_added: int = 0
    problems: tuple[str, ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)
    rows: int = 0
    images_added: int = 0
    images_known: int = 0
