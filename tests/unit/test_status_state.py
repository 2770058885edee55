"""The state `status` shows a campaign in: what a user looks at to know it is done."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from harvester import status

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _report(images: dict[str, int], queries_left: int = 0, paused: str | None = None) -> str:
    tasks = {"flickr_search": {"done": 3, "queued": queries_left}}
    report = status._report("c", "flickr", images, tasks, {"1m": 0.0, "5m": 0.0, "15m": 0.0}, NOW)
    report.paused = paused
    out = io.StringIO()
    status.render_table([report], out)
    return out.getvalue().splitlines()[0]


@pytest.mark.parametrize(
    ("images", "queries_left", "shown"),
    [
        ({"stored": 5, "failed": 1}, 0, "finished"),
        ({"stored": 5, "queued": 1}, 0, "running"),
        ({"stored": 5, "running": 2}, 0, "running"),
        ({"stored": 5}, 2, "running"),  # queries may still find more
    ],
)
def test_a_campaign_with_nothing_left_is_finished(
    images: dict[str, int], queries_left: int, shown: str
) -> None:
    assert _report(images, queries_left) == f"c (flickr)  {shown}"


def test_a_pause_is_shown_whatever_is_left() -> None:
    assert _report({"stored": 5, "queued": 1}, paused="paused") == "c (flickr)  PAUSED paused"
