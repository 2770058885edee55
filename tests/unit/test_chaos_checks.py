"""`make chaos`'s checks see an image lost, whatever reason its row gives for it."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # bench runs from the checkout

from bench.chaos import ended_problems, listing_problems, task_problems

LISTING = [
    {"id": "w0000000", "expected": "stored"},
    {"id": "w0000008", "expected": "failed"},
    {"id": "w0000017", "expected": "skipped"},
]


def _row(pid: str, state: str, reason: str | None = None, retryable: int | None = None) -> tuple:
    return ("urls", f"chaos-urls:{pid}", state, reason, retryable, None, None, None)


def test_an_image_listed_to_be_stored_that_failed_with_a_reason_is_lost() -> None:
    rows = [
        _row("w0000000", "failed", "lease_lost", 1),
        _row("w0000008", "failed", "html", 0),
        _row("w0000017", "skipped", "too_small"),
    ]
    assert listing_problems(LISTING, rows) == ["listed image w0000000 ended failed, not stored"]
    assert ended_problems(rows) == [
        "urls:chaos-urls:w0000000 lost: failed for good on a transient lease_lost"
    ]


def test_a_harvest_that_ended_as_listed_has_no_problem() -> None:
    rows = [
        _row("w0000000", "stored"),
        _row("w0000008", "failed", "html", 0),
        _row("w0000017", "skipped", "too_small"),
    ]
    assert listing_problems(LISTING, rows) == []
    assert ended_problems(rows) == []


def test_a_listed_image_without_a_row_or_unended_is_a_problem() -> None:
    rows = [_row("w0000008", "running"), _row("w0000017", "skipped", "too_small")]
    assert listing_problems(LISTING, rows) == ["listed image w0000000 has no row"]
    assert ended_problems(rows) == ["urls:chaos-urls:w0000008 did not end (running)"]


def test_a_query_task_that_did_not_end_done_is_a_problem_its_photos_have_no_row() -> None:
    tasks = [
        (1, "flickr_licenses", "done", None),
        (2, "flickr_window", "failed", "lease_lost"),
        (3, "flickr_window", "queued", None),
    ]
    assert task_problems(tasks) == [
        "task 2 (flickr_window) ended failed: lease_lost",
        "task 3 (flickr_window) ended queued",
    ]
