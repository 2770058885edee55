"""An export or report whose folder cannot take its files: one line, exit 2, nothing
half-written under a final name (the command runs as a real process, under a real limit)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

from export_harvest import Harvest

FILE_LIMIT = 64 * 1024  # bytes a file of the export may reach: the first shard is bigger


def _limited(
    harvest: Harvest, *args: str, limit: int | None = None
) -> subprocess.CompletedProcess[str]:
    def cap() -> None:
        if limit is not None:  # writes past it fail with EFBIG, as on a full disk
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        [sys.executable, "-m", "harvester.cli", *harvest.argv(*args)],
        capture_output=True, text=True, timeout=120, env=os.environ, preexec_fn=cap,
    )  # fmt: skip


def _one_line(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("harvester: "), done.stderr[-2000:]
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_an_export_that_cannot_write_a_file_stops_with_one_line_and_leaves_no_part(
    harvest: Harvest, tmp_path: Path
) -> None:
    # The database stays under the limit (its writes are below it); the shard does not.
    out = tmp_path / "shards"
    done = _limited(
        harvest, "export", "--campaign", "street", "--campaign", "svpr", "--format",
        "webdataset", "--out", str(out), limit=FILE_LIMIT,
    )  # fmt: skip
    _one_line(done, "cannot write", str(out))
    left = [p for p in out.rglob("*") if p.is_file()]
    assert not [p for p in left if p.name.startswith(".harvester-tmp-")], left
    assert all(p.stat().st_size < FILE_LIMIT for p in left), left


def test_an_export_into_a_folder_that_cannot_be_made_is_one_line(
    harvest: Harvest,
) -> None:
    done = _limited(
        harvest, "export", "--campaign", "street", "--format", "csv", "--out", "/proc/no/export"
    )
    _one_line(done, "cannot write", "/proc/no/export")


def test_a_report_that_cannot_be_written_is_one_line(harvest: Harvest) -> None:
    done = _limited(harvest, "report", "--campaign", "street", "--out", "/proc/no/report")
    _one_line(done, "cannot write", "/proc/no/report")
