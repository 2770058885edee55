"""The export folder after a failed export: what the next complete export leaves."""

from __future__ import annotations

import errno
from pathlib import Path

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
