"""Window task keys: re-submits are no-ops and a rerun of a task cannot fork the chain."""

from __future__ import annotations

from harvester.sources.flickr_campaign import window_task
from harvester.sources.flickr_windows import Window


def test_a_follow_up_is_keyed_by_its_parent_so_a_rerun_cannot_fork_the_chain():
    # A crash between enqueue and finish reruns the task; Flickr's noisy totals may then
    # size the next window differently. Both plans must be the same task.
    first = window_task(1, "castle", Window(1000, 5000), parent=42)
    rerun = window_task(1, "castle", Window(1000, 7000), parent=42)
    assert first.dedupe_key == rerun.dedupe_key
    assert window_task(1, "castle", Window(1000, 5000), parent=43).dedupe_key != first.dedupe_key


def test_submitted_windows_are_keyed_by_their_bounds():
    assert window_task(1, "castle", Window(0, 10)).dedupe_key == "flickr:1:castle:0:10"
    assert window_task(2, "castle", Window(0, 10)).dedupe_key != "flickr:1:castle:0:10"
