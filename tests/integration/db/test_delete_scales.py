"""Deleting a campaign costs in proportion to its size, not to its size squared.

Each deleted image makes SQLite look up the rows naming it as their duplicate (the
self-referencing `duplicate_of`, ON DELETE SET NULL); with no index to find them, every
lookup read the whole table, and a 20,000-image campaign's delete ran past two minutes.
SQLite's virtual-machine steps are counted, not seconds: the same work counts the same on
any machine, however loaded.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-m", "harvester.cli"]


def _steps_to_delete(tmp_path: Path, images: int) -> int:
    """VM steps (in thousands) of the cascade `harvester campaigns delete` runs."""
    database = tmp_path / f"{images}.db"
    urls = tmp_path / f"{images}.csv"
    urls.write_text("url\n" + "".join(f"http://127.0.0.1:9/{i}.jpg\n" for i in range(images)))
    for args in (["db", "upgrade"], ["submit", "urls", "--campaign", "big", str(urls)]):
        subprocess.run(
            [*CLI, "--database-url", f"sqlite:///{database}", *args],
            check=True,
            capture_output=True,
        )
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA foreign_keys=ON")  # as harvester.db.session sets it
        connection.set_progress_handler(count, 1000)
        connection.execute("DELETE FROM campaigns WHERE name = 'big'")
        assert connection.execute("SELECT count(*) FROM images").fetchone() == (0,)
    return steps[0]


def test_deleting_four_times_the_images_costs_about_four_times_the_steps(
    tmp_path: Path,
) -> None:
    small, large = (_steps_to_delete(tmp_path, n) for n in (500, 2000))
    # Linear is 4x; reading the whole table for each image would be 16x.
    assert large < 8 * small, (small, large)
