"""Notice an SQLite file deleted or replaced under a running daemon.

SQLite keeps writing to an unlinked file through its open descriptor: a daemon would report
images stored into a catalogue nobody can read any more. The file's identity (device and
inode) is taken at start and compared while running; a change stops the daemon.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine


@dataclass(frozen=True)
class DatabaseFile:
    path: Path
    identity: tuple[int, int]

    @classmethod
    def of(cls, engine: AsyncEngine) -> DatabaseFile | None:
        """The file behind an SQLite engine (None for Postgres or an in-memory database)."""
        database = engine.url.database
        if engine.url.get_backend_name() != "sqlite" or not database or database == ":memory:":
            return None
        path = Path(database).resolve()
        try:
            st = path.stat()
        except OSError:
            return None  # not created yet: nothing to compare with
        return cls(path, (st.st_dev, st.st_ino))

    def problem(self) -> str | None:
        """Why the file is no longer the daemon's database, or None while it is."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return f"the database file {self.path} was deleted while the daemon ran"
        except OSError as exc:
            return f"the database file {self.path} cannot be checked: {exc.strerror}"
        if (st.st_dev, st.st_ino) != self.identity:
            return f"the database file {self.path} was replaced while the daemon ran"
        return None
