"""The export folder after a failed export: what the next complete export leaves."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harvester.errors import OutputUnwritable
from harvester.exporters.output import MARKER, ExportFolder


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
