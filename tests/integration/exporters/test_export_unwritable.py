"""An export or report whose folder cannot take its files: one line, exit 2, nothing
half-written under a final name (the command runs as a real process, under a real limit)."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from export_harvest import Harvest, folders_of, tree_of

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


@pytest.fixture
def elsewhere() -> Iterator[Path]:
    """A folder on another filesystem than the harvest, where images are copied, not linked."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        pytest.skip("no /dev/shm for a second filesystem")
    folder = shm / f"harvester-export-{uuid.uuid4().hex}"
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_an_export_that_failed_partway_is_replaced_by_running_it_again(
    harvest: Harvest, elsewhere: Path
) -> None:
    """The folder it left is harvester's: the same export again needs no --overwrite."""
    if elsewhere.parent.stat().st_dev == harvest.root.stat().st_dev:
        pytest.skip("/dev/shm is the harvest's filesystem: images would be linked")
    sizes = sorted(p.stat().st_size for p in harvest.root.rglob("*.jpg"))
    out, whole = elsewhere / "out", elsewhere / "whole"
    args = ("export", "--campaign", "street", "--campaign", "svpr", "--format", "vpr")
    # Copies of the bigger half of the images fail, as on a disk that fills up partway.
    failed = _limited(harvest, *args, "--out", str(out), limit=sizes[len(sizes) // 2])
    _one_line(failed, "cannot write", str(out))
    assert [p for p in out.rglob("*.jpg")], "the failure must come after some images"

    again = _limited(harvest, *args, "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert _limited(harvest, *args, "--out", str(whole)).returncode == 0
    assert tree_of(out) == tree_of(whole)


def test_a_folder_not_harvesters_is_still_refused(harvest: Harvest, tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    done = _limited(
        harvest, "export", "--campaign", "street", "--format", "csv", "--out", str(theirs)
    )
    _one_line(done, "not a harvester export")
    assert [p.name for p in theirs.iterdir()] == ["notes.txt"]


def test_a_failed_export_leaves_nothing_behind_once_another_export_completes_there(
    harvest: Harvest, elsewhere: Path
) -> None:
    """The run after a failure may have other options: what the failed run wrote and it
    does not is removed, so the folder holds exactly the export that completed last."""
    if elsewhere.parent.stat().st_dev == harvest.root.stat().st_dev:
        pytest.skip("/dev/shm is the harvest's filesystem: images would be linked")
    sizes = sorted(p.stat().st_size for p in harvest.root.rglob("*.jpg"))
    out, whole = elsewhere / "out", elsewhere / "whole"
    args = ("export", "--format", "vpr", "--campaign", "street")
    failed = _limited(harvest, *args, "--campaign", "svpr", "--out", str(out), limit=sizes[-1] - 1)
    _one_line(failed, "cannot write", str(out))
    assert [p for p in out.rglob("*.jpg")], "the failure must come after some images"

    again = _limited(harvest, *args, "--split", "1,0,0", "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert _limited(harvest, *args, "--split", "1,0,0", "--out", str(whole)).returncode == 0
    assert tree_of(out) == tree_of(whole)
    assert folders_of(out) == folders_of(whole)  # no empty val/ or test/ left


@pytest.mark.parametrize("layout", ["vpr", "webdataset"])
def test_an_export_of_image_files_from_another_storage_root_is_one_line(
    harvest: Harvest, tmp_path: Path, layout: str
) -> None:
    # As after `make demo`, whose images are under harvester-demo/data, not the default data.
    out = tmp_path / "out"
    argv = ["--database-url", harvest.database_url, "--storage-root", str(tmp_path / "data")]
    done = subprocess.run(
        [sys.executable, "-m", "harvester.cli", *argv, "export", "--campaign", "street",
         "--format", layout, "--out", str(out)],
        capture_output=True, text=True, timeout=120, env=os.environ,
    )  # fmt: skip
    _one_line(done, "is not under the storage root", "--storage-root")
    assert not out.exists()
