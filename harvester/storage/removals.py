"""Files to remove once no row names them: what makes `campaigns delete --files` resumable.

A campaign's rows are deleted in one transaction, which its files cannot join. So the list of
its files is written durably before that transaction commits and worked off after it: an
interrupted delete leaves either every row (the list then removes nothing) or no rows and the
list, which the next `campaigns delete --files` finishes. No row ever names a removed file.

The lists are files of the storage itself (`.harvester-removals/` under the root or the
bucket's prefix): whichever host runs the next delete finds them where the files are.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from harvester.storage.base import Storage

PENDING_DIR = ".harvester-removals"


@dataclass(frozen=True)
class Removal:
    campaign: str
    paths: list[str]  # relative to the storage root
    file: str  # the list itself, relative to the storage root


class Removals:
    """The pending lists, one JSON file each, in the storage."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def record(self, campaign: str, paths: Sequence[str]) -> Removal:
        """Write a list and make it durable before returning."""
        # Named by time first, so that the oldest list is worked off first.
        file = f"{PENDING_DIR}/{time.time_ns():020d}-{uuid.uuid4().hex}.json"
        doc = json.dumps({"campaign": campaign, "paths": list(paths)}).encode()
        await self.storage.write(file, doc)
        self.storage.written(file)
        await self.storage.sync()
        return Removal(campaign, list(paths), file)

    async def pending(self) -> list[Removal]:
        """Lists left by deletes not finished yet, oldest first."""
        found = []
        for file in await self.storage.list(PENDING_DIR):
            if file.endswith(".json"):
                doc = json.loads(await self.storage.read(file))
                found.append(Removal(doc["campaign"], list(doc["paths"]), file))
        return found

    async def done(self, removal: Removal) -> None:
        await self.storage.remove(removal.file)
