"""The window planner: shrink on too many, widen on too few, fast when empty, never past the end."""

from __future__ import annotations

import itertools

import pytest

from harvester.sources.flickr_windows import (
    DAY,
    PAGING_CEILING,
    Window,
    first_window,
    next_window,
    shrink,
    split,
    too_many,
)

START = 1_600_000_000
LIMIT = START + 3_650 * DAY


def test_first_window_is_clipped_to_the_upload_range() -> None:
    assert first_window(START, LIMIT) == Window(START, START + 30 * DAY)
    assert first_window(START, START + DAY) == Window(START, START + DAY)


def test_a_window_far_above_the_target_or_the_paging_ceiling_is_not_paged() -> None:
    assert not too_many(700, 400)
    assert too_many(801, 400)
    assert too_many(PAGING_CEILING + 1, 750)
    assert not too_many(PAGING_CEILING, 750)


def test_shrink_keeps_the_start_and_aims_just_under_the_target() -> None:
    window = Window(START, START + 100 * DAY)
    smaller = shrink(window, total=4_000, target=400)
    assert smaller is not None and smaller.start == START
    assert 8 * DAY <= smaller.size < 10 * DAY


def test_shrink_always_makes_the_window_strictly_smaller() -> None:
    window = Window(START, START + 10)
    smaller = shrink(window, total=401, target=400)
    assert smaller is not None and smaller.size < window.size


def test_a_one_second_window_cannot_shrink_or_split() -> None:
    one = Window(START, START + 1)
    assert shrink(one, total=10_000, target=400) is None
    assert split(one) is None


def test_too_few_photos_widen_the_next_window_toward_the_target() -> None:
    window = Window(START, START + 10 * DAY)
    after = next_window(window, found=200, target=400, limit=LIMIT)
    assert after == Window(window.end, window.end + 20 * DAY)


def test_too_many_photos_narrow_the_next_window() -> None:
    window = Window(START, START + 10 * DAY)
    after = next_window(window, found=700, target=400, limit=LIMIT)
    assert after is not None and after.start == window.end
    assert after.size < window.size


def test_growth_from_a_sparse_window_is_capped() -> None:
    window = Window(START, START + DAY)
    after = next_window(window, found=1, target=400, limit=LIMIT)
    assert after is not None and after.size == 4 * DAY


def test_empty_stretches_are_crossed_faster_than_sparse_ones() -> None:
    window = Window(START, START + DAY)
    empty = next_window(window, found=0, target=400, limit=LIMIT)
    sparse = next_window(window, found=1, target=400, limit=LIMIT)
    assert empty is not None and sparse is not None
    assert empty.size > sparse.size


def test_empty_years_take_few_windows_to_cross() -> None:
    window, steps = first_window(START, LIMIT), 0
    while (after := next_window(window, 0, 400, LIMIT)) is not None:
        window, steps = after, steps + 1
    assert steps <= 4 and window.end == LIMIT


def test_the_next_window_never_passes_the_end_of_the_range() -> None:
    window = Window(LIMIT - DAY, LIMIT - 10)
    after = next_window(window, found=0, target=400, limit=LIMIT)
    assert after == Window(LIMIT - 10, LIMIT)
    assert next_window(after, found=0, target=400, limit=LIMIT) is None


def test_windows_tile_the_range_without_gaps_or_overlaps() -> None:
    window, covered = first_window(START, LIMIT), []
    density = [0, 5, 900, 30, 0, 0, 400, 1]
    for step in range(200):
        covered.append(window)
        after = next_window(window, density[step % len(density)], 400, LIMIT)
        if after is None:
            break
        window = after
    assert covered[0].start == START and covered[-1].end == LIMIT
    assert all(a.end == b.start for a, b in itertools.pairwise(covered))


def test_split_halves_a_window_exactly() -> None:
    halves = split(Window(START, START + 11))
    assert halves == (Window(START, START + 5), Window(START + 5, START + 11))


def test_an_empty_window_is_refused() -> None:
    with pytest.raises(ValueError):
        Window(START, START)
