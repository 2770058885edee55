"""Local disk: temp file in the target directory, fsync, rename; no partial file is visible."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import os
import posixpath
import re
import socket
import threading
import time
import uuid
from pathlib import Path, PurePosixPath

from harvester.errors import StorageUnavailable
from harvester.storage.base import check_relative

TEMP_MARK = ".tmp-"
STALE_TEMP_SECONDS = 300.0
MAX_DIRECTORIES_KNOWN = 10_000  # shards of 1,000 files: ten million images' worth
_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:40] or "host"
_WRITER_HOST = re.compile(TEMP_MARK.replace(".", r"\.") + r"(?P<host>[A-Za-z0-9]+)-")
_TEMP_ATTEMPTS = 3


def _open_temp(path: str) -> int:
    """Create a temp file and hold a lock on it until it is closed: the lock, not a pid
    that another process may reuse (or that another PID namespace's /proc shows as
    alive), is what tells a sweep that a writer still owns it. -1 if a sweep removed it
    between its creation and the lock."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    if os.fstat(fd).st_nlink:
        return fd
    os.close(fd)
    return -1


def _remove_if_abandoned(path: Path, cutoff: float) -> bool:
    """Unlink a temp file no live writer holds. One named by another host (storage shared
    over NFS, where a lock may not reach) must also be older than the cutoff."""
    match = _WRITER_HOST.search(path.name)
    try:  # not blocking: a FIFO someone named so would hold the sweep forever
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:  # gone already, or not ours to read: left, and the sweep goes on
        return False
    try:
        if (match is None or match["host"] != _HOST) and os.fstat(fd).st_mtime > cutoff:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # its writer is at work
        try:  # by name: once renamed into place, that name is gone and nothing is removed
            path.unlink()
        except FileNotFoundError:
            return False
        return True
    finally:
        os.close(fd)


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._unsynced: set[Path] = set()  # directories whose new entries are not yet durable
        self._directories: dict[str, Path] = {}  # relative folder -> its absolute path
        self._made: set[Path] = set()  # folders this process has made (or found) already
        self._lock = threading.Lock()  # writes run in worker threads

    @property
    def location(self) -> str:
        return str(self.root)

    def absolute(self, relative: PurePosixPath | str) -> Path:
        # Checked lexically: resolving symlinks costs a syscall per component on every write.
        return self.root.joinpath(*check_relative(relative))

    async def read(self, relative: PurePosixPath | str) -> bytes:
        return await asyncio.to_thread(self.absolute(relative).read_bytes)

    def local_path(self, relative: PurePosixPath | str) -> Path | None:
        return self.absolute(relative)

    async def close(self) -> None:
        """Nothing to close: every write was a file of its own."""

    async def write(self, relative: PurePosixPath | str, data: bytes) -> None:
        await asyncio.to_thread(self.write_sync, relative, data)

    def written(self, relative: PurePosixPath | str) -> None:
        """Note a file written (here or by a worker process) for the next `sync`.

        Called for every image in the daemon's process."""
        directory, _name = self._place(relative)
        with self._lock:
            self._unsynced.add(directory)

    def _place(self, relative: PurePosixPath | str) -> tuple[Path, str]:
        """The file's absolute folder and its name. A folder's path is worked out (and
        checked) once, not once per file: pathlib's parsing cost ~10% of a write's CPU."""
        folder, name = posixpath.split(str(relative))
        if name in ("", ".", ".."):  # not a file name: worked out in full, not kept
            path = self.absolute(relative)
            return path.parent, path.name
        directory = self._directories.get(folder)
        if directory is None:
            directory = self.absolute(relative).parent
            if len(self._directories) >= MAX_DIRECTORIES_KNOWN:
                self._directories.clear()
                self._made.clear()
            self._directories[folder] = directory
        return directory, name

    def write_sync(self, relative: PurePosixPath | str, data: bytes) -> None:
        directory, name = self._place(relative)
        if directory not in self._made:  # one mkdir a folder, not one a file
            directory.mkdir(parents=True, exist_ok=True)
            self._made.add(directory)
        fd, temp = self._create_temp(directory, name)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
                os.replace(temp, f"{directory}/{name}")
            finally:
                os.close(fd)  # only now is the lock let go: the temp file is renamed by then
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise

    @staticmethod
    def _create_temp(directory: Path, name: str) -> tuple[int, str]:
        for _ in range(_TEMP_ATTEMPTS):
            temp = f"{directory}/.{name}{TEMP_MARK}{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            try:
                fd = _open_temp(temp)
            except FileNotFoundError:  # its folder was removed since it was made here
                directory.mkdir(parents=True, exist_ok=True)
                fd = _open_temp(temp)
            if fd >= 0:
                return fd, temp
        raise OSError(f"temp files in {directory} kept being swept away as they were made")

    def check_writable(self) -> None:
        """Write a file under the root, or raise the OSError that says why not. The folders
        made for it are removed again (the first image makes them), so a start refused
        later, for its database, leaves nothing on disk."""
        made = list(itertools.takewhile(lambda p: not p.exists(), [self.root, *self.root.parents]))
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f"{TEMP_MARK}{_HOST}-{os.getpid()}-probe"
            probe.write_bytes(b"")
            probe.unlink(missing_ok=True)  # another daemon's sweep may have taken it
        finally:
            for folder in made:  # deepest first
                with contextlib.suppress(OSError):
                    folder.rmdir()

    async def remove(self, relative: PurePosixPath | str) -> bool:
        """Delete a stored file (a campaign deleted with its files); False if it was gone."""
        try:
            self.absolute(relative).unlink()
        except FileNotFoundError:
            return False
        return True

    async def list(self, folder: str = "") -> list[str]:
        """The files under a folder of the root, as relative paths; temp files are not."""
        top = self.absolute(folder) if folder else self.root
        return sorted(
            path.relative_to(self.root).as_posix()
            for path in top.rglob("*")
            if TEMP_MARK not in path.name and path.is_file()
        )

    async def sync(self) -> None:
        """Make the renames noted by `written` durable: call before recording them as stored.

        One fsync per directory touched since the last call, not one per file."""
        with self._lock:
            directories, self._unsynced = self._unsynced, set()
        if not directories:
            return
        try:
            await asyncio.to_thread(fsync_directories, directories)
        except OSError as exc:
            with self._lock:
                self._unsynced |= directories  # not durable yet: the next call tries again
            raise StorageUnavailable(f"cannot sync files under {self.root}: {exc}") from exc

    def sweep_temp_files(self, older_than_s: float = STALE_TEMP_SECONDS) -> int:
        """Remove temp files killed writers left; one a live writer holds stays."""
        if not self.root.is_dir():
            return 0
        cutoff = time.time() - older_than_s
        removed = 0
        for directory, _dirs, files in os.walk(self.root):
            for name in files:
                if TEMP_MARK not in name:
                    continue
                removed += _remove_if_abandoned(Path(directory, name), cutoff)
        return removed


def fsync_directories(directories: set[Path]) -> None:
    # A rename is durable only once the directory entry itself reaches the disk.
    for directory in sorted(directories):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
