"""The folder an export writes: refused if something else lives there (an export of another
format too), updated in place if it is ours (only what changed is written; what the export no
longer has is removed).

The marker that makes it ours is written, marked incomplete, before the first file, and
completed last: a folder an export left when it failed partway (a full disk, a kill) is still
ours, so running the export again replaces it without --overwrite. Each path is appended to a
journal beside the marker before its file is begun, so the next export to complete there
removes exactly what earlier ones wrote and it does not (the last complete export's files,
every path a failed one listed, their temp files, folders left empty), whatever options the
failed one had, and never a file of the user's own that shares the folder (--overwrite)."""

from __future__ import annotations

import errno
import functools
import hashlib
import io
import json
import os
import shutil
import stat
import sys
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from harvester.errors import InputError, OutputUnwritable
from harvester.terminal import say

MARKER = ".harvester-export.json"
JOURNAL = ".harvester-export.journal"  # JSON strings, one a line: the paths being written
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
    _journal: io.BufferedWriter | None = None

    @classmethod
    def open(cls, root: Path, kind: str, *, overwrite: bool) -> ExportFolder:
        folder = cls(root, kind)
        marker = root / MARKER
        if root.exists() and not root.is_dir():
            raise InputError(f"--out {root} is a file, not a folder")
        if marker.is_file():
            made, files, folder._failed_before = _recorded(marker)
            if made != kind and not overwrite:  # its files would all be removed as stale
                raise InputError(
                    f"--out {root} holds a {made} export, not {kind}; choose another folder "
                    f"or pass --overwrite to replace it"
                )
            folder._previous = set(files) | _journaled(root / JOURNAL)
        elif root.exists() and any(root.iterdir()) and not overwrite:
            raise InputError(
                f"--out {root} is not empty and not a harvester export; "
                "choose another folder or pass --overwrite"
            )
        # Made with its first file: an export refused before that leaves no folder behind.
        return folder

    def _target(self, relative: str) -> Path:
        parts = _parts(relative)
        if parts is None:
            raise ValueError(f"unsafe export path {relative!r}")
        if relative not in self._files:
            self._record(relative)
            self._files.add(relative)
        return self.root.joinpath(*parts)

    def _record(self, relative: str) -> None:
        """`relative` listed in the journal, flushed, before its temp file is made: an export
        killed at any point leaves the next one every path it may have written. (Not synced:
        a machine that crashes may lose the last lines, an export that is killed does not.)"""
        journal = self.root / JOURNAL
        try:
            if self._journal is None:
                # What earlier exports wrote (a failed one's journal too) stays listed in the
                # marker, for the export that completes to remove; this export's journal starts.
                self._mark(sorted(self._previous), complete=False)
                self._journal = journal.open("wb")
                weakref.finalize(self, self._journal.close)  # a failed export's is closed too
            self._journal.write(json.dumps(relative).encode() + b"\n")
            self._journal.flush()
        except OSError as exc:
            raise OutputUnwritable(f"cannot write {journal}: {exc.strerror or exc}") from exc

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
        """Remove what earlier exports of this folder wrote and this one did not (the marker's
        files and a failed export's journal: nothing else), a killed one's temp files, and
        folders left empty; record this export's files as complete, the journal folded in.

        A listed path that could reach outside the folder (absolute, with `..`, or in a
        folder that is, symlinks followed, not inside it) is left alone with one warning
        line, not refused: the export is still right, and the path is not listed again."""
        folders, outside = self._remove_stale()
        _remove_empty(self.root, folders)
        self._mark(sorted(self._files), complete=True)
        if self._journal is not None:
            self._journal.close()
        (self.root / JOURNAL).unlink(missing_ok=True)
        if outside:
            say(
                f"harvester: the export record in {self.root} listed {len(outside)} files "
                f"outside it (such as {outside[0]!r}); left them alone",
                file=sys.stderr,
            )
        return self.changes

    def _remove_stale(self) -> tuple[set[PurePosixPath], list[str]]:
        """The folders the removals may leave empty, and the stale paths refused as outside."""
        real = self.root.resolve()

        @functools.cache
        def inside(folder: Path) -> bool:
            return folder.resolve().is_relative_to(real)

        folders: set[PurePosixPath] = set()
        outside: list[str] = []
        for entry in sorted(self._previous - {MARKER, JOURNAL}):
            stale = entry not in self._files
            if not (stale or self._failed_before):
                continue
            parts = _parts(entry)
            if parts is None or not inside(self.root.joinpath(*parts[:-1])):
                outside += [entry] if stale else []
                continue
            path = self.root.joinpath(*parts)
            if self._failed_before:  # a killed run's temp file, ours by name
                _remove_file(path.with_name(_TEMP + path.name))
            if stale:
                self.changes.removed += _remove_file(path)
                # A failed run made the folders of a file it could not write, too.
                folders.update(PurePosixPath(*parts).parents)
        return folders, outside

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
    included), not listed again for every file removed from it. One that is gone already,
    or is a symlink (which rmdir does not follow), stays as it is."""
    kept = (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT, errno.ENOTDIR)
    for folder in sorted(folders - {PurePosixPath()}, key=lambda f: len(f.parts), reverse=True):
        try:
            root.joinpath(*folder.parts).rmdir()
        except OSError as exc:
            if exc.errno not in kept:
                raise


def _parts(relative: str) -> tuple[str, ...] | None:
    """The parts of a path an export may write, or None: absolute, with `..` or empty, it
    could name something outside the folder, or the folder itself."""
    path = PurePosixPath(relative)
    if not path.parts or ".." in path.parts or path.is_absolute() or "\0" in relative:
        return None
    return path.parts


def _recorded(marker: Path) -> tuple[str, list[str], bool]:
    """The format a marker records, its files, and whether that export failed."""
    try:
        recorded = json.loads(marker.read_text("utf-8"))
        made, files = recorded["kind"], recorded["files"]
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise TypeError
        if not isinstance(made, str):
            raise TypeError
        return made, files, recorded.get("complete") is False
    except (ValueError, KeyError, TypeError):
        raise InputError(f"{marker} is not readable; remove it or the folder") from None


def _journaled(journal: Path) -> set[str]:
    """The paths a failed export listed; a line that is not one (cut short) names nothing."""
    try:
        lines = journal.read_bytes().splitlines()
    except FileNotFoundError:
        return set()
    found: set[str] = set()
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, str):
            found.add(entry)
    return found


def _remove_file(path: Path) -> int:
    """1 if a file was at `path` and is gone. Anything else there (a symlink, a folder) is
    not what an export writes, and stays; a symlink is not followed."""
    try:
        if not stat.S_ISREG(path.lstat().st_mode):
            return 0
        path.unlink()
    except (FileNotFoundError, NotADirectoryError):
        return 0
    return 1


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
