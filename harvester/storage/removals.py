"""Files to remove once no row names them: what makes `campaigns delete --files` resumable.

A campaign's rows are deleted in one transaction, which its files cannot join. So the list of
its files is written durably before that transaction commits and worked off after it: an
interrupted delete leaves either every row (the list then removes nothing) or no rows and the
list, which the next `campaigns delete --files` finishes. No row ever names a removed file.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harvester.storage.local import fsync_directories

PENDING_DIR = ".harvester-removals"


@dataclass(frozen=True)
class Removal:
    campaign: str
    paths: list[str]  # relative to the storage root
    file: Path


class Removals:
    """The pending lists, one JSON file each, under the storage root."""

    def __init__(self, root: Path) -> None:
        self.directory = root / PENDING_DIR

    def record(self, campaign: str, paths: Sequence[str]) -> Removal:
        """Write a list and make it durable (file and directory entry) before returning."""
        self.directory.mkdir(parents=True, exist_ok=True)
        file = self.directory / f"{uuid.uuid4().hex}.json"
        temp = file.with_suffix(".part")
        with temp.open("w") as handle:
            json.dump({"campaign": campaign, "paths": list(paths)}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, file)
        fsync_directories({self.directory})
        return Removal(campaign, list(paths), file)

    def pending(self) -> list[Removal]:
        """Lists left by deletes not finished yet, oldest first."""
        if not self.directory.is_dir():
            return []
        found = []
        for file in sorted(self.directory.glob("*.json"), key=lambda f: f.stat().st_mtime):
            doc = json.loads(file.read_text())
            found.append(Removal(doc["campaign"], list(doc["paths"]), file))
        for temp in self.directory.glob("*.part"):
            temp.unlink()  # a list never finished being written: its delete never committed
        return found

    def done(self, removal: Removal) -> None:
        removal.file.unlink(missing_ok=True)
