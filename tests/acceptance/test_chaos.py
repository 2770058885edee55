"""`make chaos`, short: every fault knob on, SIGKILL five times and SIGTERM once amid the work,
then the invariants (each image ended as listed, none lost to a fault or a kill, every query
task done, files whole, no temp or orphan file)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(600)  # a few minutes on a busy machine: daemons restarted seven times
def test_the_daemon_killed_at_random_under_every_fault_keeps_every_invariant(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.chaos", "--images", "40", "--kills", "5",
         "--seed", "3", "--home", str(tmp_path / "chaos"), "--final-timeout", "240"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    summary = done.stdout.splitlines()[0]
    assert "all invariants held" in summary, done.stdout
    assert "1 SIGTERM" in summary and "5 SIGKILL" in summary, summary
