"""The export folder after a failed export: what the next complete export leaves."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harvester.errors import OutputUnwritable
from harvester.exporters.output import JOURNAL, MARKER, ExportFolder


def test_a_folder_a_failed_export_made_for_a_file_it_could_not_write_goes_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    failed = ExportFolder.open(out, "vpr", overwrite=False)
    failed.write("README.txt", b"first")
    real = Path.write_bytes

    def disk_full(path: Path, data: bytes) -> int:
        if path.parent.name == "database":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(Path, "write_bytes", disk_full)
    with pytest.raises(OutputUnwritable, match="No space left"):
        failed.write("images/val/database/a.jpg", b"jpeg")
    monkeypatch.undo()
    assert (out / "images" / "val" / "database").is_dir(), "the failed write left its folder"

    again = ExportFolder.open(out, "vpr", overwrite=False)
    again.write("README.txt", b"second")
    again.finish()
    assert sorted(p.name for p in out.rglob("*")) == sorted([MARKER, "README.txt"])


def _exported(out: Path, names: list[str]) -> None:
    """A complete export of `names` (each holding its own name) into `out`."""
    folder = ExportFolder.open(out, "vpr", overwrite=False)
    for name in names:
        folder.write(name, name.encode())
    folder.finish()


def _tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def test_a_folder_holding_a_file_of_the_users_own_is_kept_when_the_export_leaves_it(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    _exported(out, [f"images/{s}/database/{n}.jpg" for s in ("train", "val") for n in "ab"])
    (out / "images" / "train" / "database" / "notes.txt").write_text("mine")
    (out / "mine").mkdir()  # an empty folder of the user's, no export's
    _exported(out, ["README.txt"])
    assert _tree(out) == [
        MARKER,
        "README.txt",
        "images",
        "images/train",
        "images/train/database",
        "images/train/database/notes.txt",
        "mine",
    ]


def test_the_folders_stale_files_leave_are_each_looked_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not once per file removed: a folder listed for each of its thousands of stale
    images made the sweep quadratic in them."""
    out = tmp_path / "out"
    _exported(out, [f"images/train/database/{n}.jpg" for n in range(50)])
    looked: list[str] = []

    def counted(real: Callable[..., Any]) -> Callable[..., Any]:
        def call(path: Any = ".", *args: Any, **kwargs: Any) -> Any:
            looked.append(os.fspath(path))
            return real(path, *args, **kwargs)

        return call

    for name in ("listdir", "scandir", "rmdir"):
        monkeypatch.setattr(os, name, counted(getattr(os, name)))
    _exported(out, ["README.txt"])
    monkeypatch.undo()
    assert sorted(looked) == sorted(set(looked)), looked
    assert _tree(out) == [MARKER, "README.txt"]


def test_a_file_of_the_users_own_survives_a_failed_export_and_the_complete_one_after(
    tmp_path: Path,
) -> None:
    """--overwrite into a folder holding the user's files: the export after a failed one
    removes what the failed one wrote, and nothing else."""
    out = tmp_path / "out"
    (out / "images").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    (out / "images" / "drawing.png").write_bytes(b"mine too")
    failed = ExportFolder.open(out, "vpr", overwrite=True)
    failed.write("images/a.jpg", b"a")
    with pytest.raises(KeyboardInterrupt), failed.streaming("shard-0.tar") as handle:
        handle.write(b"half a shard")
        raise KeyboardInterrupt  # interrupted mid-export

    again = ExportFolder.open(out, "vpr", overwrite=True)
    again.write("README.txt", b"readme")
    again.finish()
    assert _tree(out) == [MARKER, "README.txt", "images", "images/drawing.png", "notes.txt"]


def test_a_killed_exports_files_and_temp_files_go_once_another_export_completes(
    tmp_path: Path,
) -> None:
    """SIGKILL'd mid-file: what it wrote and the temp file it was writing are removed."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_MID_FILE, str(out)], capture_output=True, timeout=60
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (out / "shards" / ".harvester-tmp-00000.tar").is_file(), _tree(out)

    again = ExportFolder.open(out, "webdataset", overwrite=False)
    again.write("README.txt", b"readme")
    again.finish()
    assert _tree(out) == [MARKER, "README.txt", "notes.txt"]


KILLED_MID_FILE = """
import os, signal, sys
from pathlib import Path
from harvester.exporters.output import ExportFolder

folder = ExportFolder.open(Path(sys.argv[1]), "webdataset", overwrite=True)
folder.write("images/a.jpg", b"a")
with folder.streaming("shards/00000.tar") as handle:
    handle.write(b"half a shard")
    handle.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_marker_listing_paths_outside_the_folder_removes_none_of_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hand-edited marker (or journal): `..`, an absolute path, a path through a symlinked
    folder."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    outside = [tmp_path / "outside.txt", elsewhere / "abs.txt", elsewhere / "x", tmp_path / "j"]
    for path in outside:
        path.write_text("not the export's")
    out = tmp_path / "out"
    _exported(out, ["README.txt"])
    (out / "link").symlink_to(elsewhere, target_is_directory=True)
    listed = ["../outside.txt", str(elsewhere / "abs.txt"), "link/x", "README.txt"]
    (out / MARKER).write_text(json.dumps({"kind": "vpr", "complete": True, "files": listed}))
    (out / JOURNAL).write_text('"../j"\n')

    _exported(out, ["other.txt"])
    assert all(path.read_text() == "not the export's" for path in outside)
    assert _tree(out) == [MARKER, "link", "other.txt"]
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and "4 files" in warning[0] and "outside" in warning[0], warning
