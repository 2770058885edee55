"""Input that once did nothing, silently and with exit 0, is refused in one line with exit 2:
a filter no row can match, a URL list with no rows, a campaign name that is hard to type
again, options a command would have ignored."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _harvester(database_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harvester.cli", "--database-url", database_url, *args],
        capture_output=True, text=True, timeout=120, cwd=cwd, env=os.environ,
    )  # fmt: skip


def _refused(done: subprocess.CompletedProcess[str], why: str) -> None:
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1].endswith(why), done.stderr


def test_jobs_list_refuses_a_state_that_is_none_naming_the_states(
    sqlite_url: str, tmp_path: Path
) -> None:
    """`--state faild` printed "no rows match" and exited 0, as if no row had failed."""
    done = _harvester(sqlite_url, tmp_path, "jobs", "list", "--state", "stored", "--state", "faild")
    _refused(
        done,
        "argument --state: 'faild' is not a state; use one of "
        "queued, running, done, failed, cancelled, stored, skipped",
    )
    for state in ("done", "stored", "failed"):
        listed = _harvester(sqlite_url, tmp_path, "jobs", "list", "--state", state)
        assert listed.returncode == 0 and "no rows match" in listed.stdout, listed
