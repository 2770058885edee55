"""WebDataset tar shards (`.jpg` + `.json` per image), the format img2dataset users train on.

Members carry fixed owners, modes and times, so the same images give the same bytes."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Sequence
from typing import BinaryIO

from harvester.exporters.images import read_in_order
from harvester.exporters.output import ExportFolder
from harvester.exporters.rows import plain, table_row
from harvester.exporters.selection import Item
from harvester.storage.base import Storage

SHARD_SIZE = 1000


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def key_of(index: int) -> str:
    """img2dataset's key: shard number and index within it, 9 digits."""
    shard, offset = divmod(index, SHARD_SIZE)
    return f"{shard:05d}{offset:04d}"


async def _shard(handle: BinaryIO, items: Sequence[tuple[str, Item]], storage: Storage) -> None:
    with tarfile.open(fileobj=handle, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        keyed = iter(items)
        async for data in read_in_order(storage, [item.record["path"] for _, item in items]):
            key, item = next(keyed)
            meta = plain({"key": key, **table_row(item)})
            text = json.dumps(meta, sort_keys=True, ensure_ascii=False).encode("utf-8")
            tar.addfile(_member(f"{key}.jpg", len(data)), io.BytesIO(data))
            tar.addfile(_member(f"{key}.json", len(text)), io.BytesIO(text))


async def export_webdataset(
    items: Sequence[Item], folder: ExportFolder, storage: Storage
) -> dict[int, str]:
    """Shards `00000.tar`, `00001.tar`, ...; returns where each image went, by image id."""
    keyed = [(key_of(index), item) for index, item in enumerate(items)]
    where: dict[int, str] = {}
    for start in range(0, len(keyed), SHARD_SIZE):
        chunk = keyed[start : start + SHARD_SIZE]
        name = f"{start // SHARD_SIZE:05d}.tar"
        with folder.streaming(name) as handle:
            await _shard(handle, chunk, storage)
        where.update({item.record["id"]: f"{name}:{key}.jpg" for key, item in chunk})
    return where
