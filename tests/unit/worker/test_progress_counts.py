"""The daemon's progress counts follow what the database recorded of each result."""

from __future__ import annotations

from harvester.outcomes import Failure, Outcome, Result
from harvester.worker.progress import Counters


def test_counts_follow_the_state_the_database_left_each_row_in() -> None:
    results: list[Result] = [
        Outcome(1, "stored"),
        Outcome(2, "skipped", {"reason": "too_small"}),
        Failure(3, "timed out", retryable=True, reason="timeout"),  # queued again
        Failure(4, "timed out", retryable=True, reason="timeout"),  # its last attempt
        Failure(5, "gone", retryable=False, reason="not_found"),  # its lease was lost
        Outcome(6, "stored"),  # its lease was lost: the new owner's outcome is counted
        Outcome(7, "skipped", {"reason": "duplicate"}),  # its lease was lost
    ]
    counters = Counters()
    counters.record("images", results, {1: "stored", 2: "skipped", 3: "queued", 4: "failed"})
    shown = counters.as_dict()
    assert [shown[f"images_{k}"] for k in ("stored", "skipped", "retried", "failed")] == [1] * 4
    assert counters.skip_reasons == {"too_small": 1}
