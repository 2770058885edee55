"""The folder an export writes: refused if something else lives there, updated in place if
it is ours (only what changed is written; what the export no longer has is removed).

The marker that makes it ours is written, marked incomplete, before the first file, and
completed last: a folder an export left when it failed partway (a full disk) is still ours,
so running the export again replaces it without --overwrite. Which files the failed run
wrote is not recorded, so the next export to complete there removes every file it did not
write itself, and every folder left empty (one the failed run made for a file it could not
write too): the folder then holds exactly that export, whatever options the failed one had."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from harvester.errors import InputError, OutputUnwritable

MARKER = ".harvester-export.json"
_TEMP = ".harvester-tmp-"


@dataclass
class Changes:
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0

    def __str__(self) -> str:
        return (
            f"{self.added} files added, {self.changed} changed, {self.unchanged} unchanged, "
            f"{self.removed} removed"
        )


@dataclass
class ExportFolder:
    """Writes files under `root`, remembering them in a marker file for the next export."""

    root: Path
    kind: str
    changes: Changes = field(default_factory=Changes)
    _files: set[str] = field(default_factory=set)
    _previous: set[str] = field(default_factory=set)
    _failed_before: bool = False
    _claimed: bool = False

    @classmethod
    def open(cls, root: Path, kind: str, *, overwrite: bool) -> ExportFolder:
        folder = cls(root, kind)
        marker = root / MARKER
        if root.exists() and not root.is_dir():
            raise InputError(f"--out {root} is a file, not a folder")
        if marker.is_file():
            try:
                recorded = json.loads(marker.read_text("utf-8"))
                folder._previous = set(recorded["files"])
                folder._failed_before = recorded.get("complete") is False
            except (ValueError, KeyError, TypeError):
                raise InputError(f"{marker} is not readable; remove it or the folder") from None
        elif root.exists() and any(root.iterdir()) and not overwrite:
            raise InputError(
                f"--out {root} is not empty and not a harvester export; "
                "choose another folder or pass --overwrite"
            )
        # Made with its first file: an export refused before that leaves no folder behind.
        return folder

    def _target(self, relative: str) -> Path:
        parts = PurePosixPath(relative).parts
        if not parts or ".." in parts or PurePosixPath(relative).is_absolute():
            raise ValueError(f"unsafe export path {relative!r}")
        if not self._claimed:
            # What an earlier export wrote stays listed, for the export that completes to remove.
            self._mark(sorted(self._previous), complete=False)
            self._claimed = True
        self._files.add(relative)
        return self.root.joinpath(*parts)

    def write(self, relative: str, data: bytes) -> None:
        """Write `data` unless the file already holds exactly it."""
        target = self._target(relative)
        if self._needs(target, lambda: target.read_bytes() == data):
            with _writing(target) as temp:
                temp.write_bytes(data)
                os.replace(temp, target)

    def place(self, relative: str, source: Path, sha256: str | None) -> None:
        """The stored file at `relative`: a hard link when the filesystem allows, else a copy."""
        target = self._target(relative)
        if self._needs(target, lambda: _same(target, source, sha256)):
            with _writing(target) as temp:
                try:
                    os.link(source, temp)
                except OSError:  # another filesystem, or links not allowed: copy
                    shutil.copyfile(source, temp)
                os.replace(temp, target)

    @contextmanager
    def streaming(self, relative: str) -> Iterator[BinaryIO]:
        """A large file written to a temp name through the handle, kept only if it differs."""
        target = self._target(relative)
        with _writing(target) as temp:
            with temp.open("wb") as handle:
                yield handle
            if self._needs(target, lambda: _digest(target) == _digest(temp)):
                os.replace(temp, target)
            else:
                temp.unlink()

    def unchanged(self, relative: str, sha256: str | None) -> bool:
        """True (and counted) when the file already holds the bytes of that digest: what
        need not be read from storage again."""
        target = self._target(relative)
        if sha256 is None or not target.is_file() or _digest(target) != sha256:
            return False
        self.changes.unchanged += 1
        return True

    def _needs(self, target: Path, same: Callable[[], bool]) -> bool:
        """Count the file as added, changed or unchanged; False if it is already right."""
        if target.is_file():
            if same():
                self.changes.unchanged += 1
                return False
            self.changes.changed += 1
        else:
            self.changes.added += 1
        return True

    def finish(self) -> Changes:
        """Remove what an earlier export of this folder wrote and this one did not (after a
        failed one: every file but this export's), and folders left empty; record."""
        earlier = self._previous
        if self._failed_before:
            earlier = {p.relative_to(self.root).as_posix() for p in self.root.rglob("*")}
        folders: set[PurePosixPath] = set()  # what the removals may leave empty
        for stale in sorted(earlier - self._files - {MARKER}):
            relative = PurePosixPath(stale)
            path = self.root.joinpath(*relative.parts)
            if path.is_file():
                path.unlink()
                self.changes.removed += 1
                folders.update(relative.parents)
            elif path.is_dir():  # made by the failed run, maybe for a file it could not write
                folders.update([relative, *relative.parents])
        _remove_empty(self.root, folders)
        self._mark(sorted(self._files), complete=True)
        return self.changes

    def _mark(self, files: list[str], *, complete: bool) -> None:
        marker = {"kind": self.kind, "complete": complete, "files": files}
        with _writing(self.root / MARKER) as temp:
            temp.write_text(json.dumps(marker, indent=1) + "\n", "utf-8")
            os.replace(temp, self.root / MARKER)


@contextmanager
def _writing(target: Path) -> Iterator[Path]:
    """The temp name `target` is written under, its folder made; any failure (an
    interruption too) removes it, and an OS error is one line naming the file."""
    temp = target.with_name(_TEMP + target.name)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        temp.unlink(missing_ok=True)
        yield temp
    except OSError as exc:
        temp.unlink(missing_ok=True)
        other = exc.filename not in (None, str(temp), str(target), str(target.parent))
        about = f" ({exc.filename})" if other else ""
        raise OutputUnwritable(f"cannot write {target}: {exc.strerror or exc}{about}") from exc
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _remove_empty(root: Path, folders: set[PurePosixPath]) -> None:
    """A split or shard folder that held only stale files goes with them: one pass, deepest
    first, each folder tried once (rmdir refuses one holding anything, the user's own files
    included), not listed again for every file removed from it."""
    for folder in sorted(folders - {PurePosixPath()}, key=lambda f: len(f.parts), reverse=True):
        try:
            root.joinpath(*folder.parts).rmdir()
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise


def _same(target: Path, source: Path, sha256: str | None) -> bool:
    try:
        if os.path.samefile(target, source):
            return True
    except OSError:
        return False
    if sha256 is None or target.stat().st_size != source.stat().st_size:
        return False
    return _digest(target) == sha256


def _digest(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
