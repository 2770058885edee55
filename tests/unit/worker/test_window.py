"""The window of images in flight follows the measured latency, between a floor and a ceiling."""

from __future__ import annotations

from harvester.worker.window import Window


def _settled(window: Window, *, process_s: float, outside_s: float) -> int:
    for _ in range(200):
        window.measured(process_s=process_s, outside_s=outside_s)
    return window.limit


def test_slower_fetches_widen_the_window_so_the_workers_stay_fed():
    fast = _settled(Window(2, 2, ceiling=1000), process_s=0.02, outside_s=0.01)
    slow = _settled(Window(2, 2, ceiling=1000), process_s=0.02, outside_s=0.5)
    # 2 workers at 20 ms each take 100 images/s; 0.5 s outside needs 50 out there (x2 headroom).
    assert slow == 2 * 2 + 100
    assert fast < slow


def test_more_workers_need_more_images_in_flight():
    two = _settled(Window(2, 2, ceiling=10_000), process_s=0.02, outside_s=0.2)
    sixteen = _settled(Window(16, 2, ceiling=10_000), process_s=0.02, outside_s=0.2)
    assert sixteen == 8 * two


def test_the_window_never_leaves_a_worker_without_a_next_image_nor_passes_the_ceiling():
    assert _settled(Window(4, 2, ceiling=64), process_s=1.0, outside_s=0.0) == 4 * 3
    assert _settled(Window(4, 2, ceiling=64), process_s=0.001, outside_s=5.0) == 64
    assert Window(4, 2, ceiling=8).floor == 8  # a ceiling below the floor wins: memory first
