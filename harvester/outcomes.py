"""What one attempt at a row came to, as plain values any process can build and send.

A worker process that fetched and stored an image builds these without the database;
the coordinator records them (harvester.db.queue).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from harvester.measures import Measures

MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class Outcome:
    """A row's final state (a TaskState or ImageState value) and the columns to record."""

    id: int
    state: str
    values: Mapping[str, Any] = field(default_factory=dict)
    measures: Measures | None = None  # for metrics, not stored

    def __reduce__(self) -> tuple[object, ...]:
        """Pickled as its fields in order (a worker sends one for every image it stores)."""
        return (Outcome, (self.id, self.state, self.values, self.measures))


@dataclass(frozen=True)
class Failure:
    """Why a row's attempt failed: a message, its stable short code and whether to retry."""

    id: int
    error: str
    _: KW_ONLY  # called one way: Failure(id, error, retryable=..., reason=...)
    retryable: bool
    retry_after: float | None = None
    reason: str = "error"
    # The server asked for time (429, Retry-After): deferred without spending an attempt.
    throttled: bool = False
    measures: Measures | None = None  # for metrics, not stored

    def __post_init__(self) -> None:
        # An error may quote what a hostile input holds (a 20 MB URL): last_error stays short.
        if len(self.error) > MAX_ERROR_CHARS:
            cut = f"{self.error[: MAX_ERROR_CHARS - 40]}... ({len(self.error)} characters)"
            object.__setattr__(self, "error", cut)


Result = Outcome | Failure
RETRIED = "retried"  # a failure that will be tried again: counted, never a row's state


def recorded_as(result: Result, left_as: Mapping[int, str]) -> str | None:
    """What the database made of a result just written, for counting, by the state
    `Queue.finish` or `Queue.fail` left its row in: an outcome's state, a failure's `failed`
    or `retried`. None when the row is absent: its lease was lost (another owner's outcome
    will be counted) or not even its failure was taken, and nothing was recorded."""
    state = left_as.get(result.id)
    if state is None or isinstance(result, Outcome):
        return state
    return "failed" if state == "failed" else RETRIED


def reason_of(result: Result) -> str:
    """The stable short code of a failure or skip ('' for rows that ended well)."""
    if isinstance(result, Failure):
        return result.reason
    return str(result.values.get("reason") or "")
