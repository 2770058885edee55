"""The state `status` shows a campaign in: what a user looks at to know it is done."""

from __future__ import annotations

import io

import pytest

from harvester.status import CampaignReport, render_table


def _report(images: dict[str, int], queries_left: int = 0, paused: str | None = None) -> str:
    report = CampaignReport(
        name="c",
        provider="flickr",
        paused=paused,
        paused_message=None,
        images=images,
        tasks={"flickr_search": {"done": 3, "queued": queries_left}},
        percent_done=None,
        queries_left=queries_left,
        images_per_s={"1m": 0.0},
        eta_s=None,
    )
    out = io.StringIO()
    render_table([report], out)
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
