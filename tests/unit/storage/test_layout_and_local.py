"""Paths never escape the root; writes are all-or-nothing; stale temp files are swept."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

import pytest

from harvester.storage.layout import file_name, relative_path, shard_of, slug, unique_slug
from harvester.storage.local import _HOST, TEMP_MARK, LocalStorage


@pytest.mark.parametrize(
    "query,expected",
    [
        ("Argentina", "argentina"),
        ("New York City", "new-york-city"),
        ("../../etc/passwd", "etc-passwd"),
        ("..", None),
        ("São Paulo", "sao-paulo"),
        ("東京", None),
        ("a/b\\c", "a-b-c"),
    ],
)
def test_slug_is_one_safe_path_component(query: str, expected: str | None):
    result = slug(query)
    assert "/" not in result and "\\" not in result and result not in ("", ".", "..")
    if expected is None:
        assert result.startswith("q-") and slug(query) == result  # stable hash name
    else:
        assert result == expected


def test_flickr_layout_matches_the_im2gps_naming():
    name = file_name("315157387", "c36ba74681", "100", "23812473@N00")
    assert str(relative_path("flickr", "argentina", shard_of(15_001), name)) == (
        "flickr/argentina/00015/315157387_c36ba74681_100_23812473@N00.jpg"
    )
    assert file_name("1", "../x").startswith("1_-x-")


def test_ids_that_clean_to_the_same_name_still_get_different_files():
    names = {file_name(i) for i in ("photo 1", "photo-1", "photo/1", "東京", "大阪")}
    assert len(names) == 5 and file_name("photo-1") == "photo-1.jpg"
    assert len(file_name("x" * 400)) < 140
    assert unique_slug("Street Views") != unique_slug("street-views") == "street-views"


def test_unsafe_components_are_refused():
    for bad in ("..", "a/b", ""):
        with pytest.raises(ValueError):
            relative_path("flickr", bad, 0, "x.jpg")


def test_write_is_atomic_and_leaves_no_temp_file(tmp_path: Path):
    storage = LocalStorage(tmp_path)
    storage.write_sync("flickr/g/00000/a.jpg", b"\xff\xd8data")
    storage.write_sync("flickr/g/00000/a.jpg", b"\xff\xd8newer")  # a rerun overwrites in place
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files == [tmp_path / "flickr/g/00000/a.jpg"]
    assert files[0].read_bytes() == b"\xff\xd8newer"
    with pytest.raises(ValueError, match="escapes"):
        storage.absolute("../outside.jpg")


def test_a_folder_removed_after_a_write_is_made_again(tmp_path: Path):
    # Folders are made once a process, not once a file: one removed since is made anew.
    storage = LocalStorage(tmp_path)
    storage.write_sync("urls/g/00000/a.jpg", b"\xff\xd8a")
    (tmp_path / "urls/g/00000/a.jpg").unlink()
    (tmp_path / "urls/g/00000").rmdir()
    storage.write_sync("urls/g/00000/b.jpg", b"\xff\xd8b")
    assert [p.name for p in (tmp_path / "urls/g/00000").iterdir()] == ["b.jpg"]
    storage.write_sync("urls/g/00000/./c.jpg", b"\xff\xd8c")  # same folder, spelt otherwise
    assert (tmp_path / "urls/g/00000/c.jpg").read_bytes() == b"\xff\xd8c"


def test_sweep_keeps_another_hosts_fresh_temp_file_and_removes_its_old_one(tmp_path: Path):
    storage = LocalStorage(tmp_path)
    shard = tmp_path / "flickr/g/00000"
    shard.mkdir(parents=True)
    stale = shard / f".a.jpg{TEMP_MARK}otherhost-12-abcd1234"
    fresh = shard / f".b.jpg{TEMP_MARK}otherhost-12-abcd5678"  # its lock may not reach here
    kept = shard / "c.jpg"
    for path in (stale, fresh, kept):
        path.write_bytes(b"x")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    assert storage.sweep_temp_files(older_than_s=300) == 1
    assert not stale.exists() and fresh.exists() and kept.exists()


def test_sweep_goes_by_the_writers_lock_not_by_its_pid(tmp_path: Path):
    """A pid in a name can be alive again (reused, or another PID namespace's /proc): a
    fresh temp file named by this very process but held by no writer is garbage; one a
    writer holds stays, whatever pid its name carries."""
    storage = LocalStorage(tmp_path)
    shard = tmp_path / "urls/g/00000"
    shard.mkdir(parents=True)
    orphan = shard / f".a.jpg{TEMP_MARK}{_HOST}-{os.getpid()}-abcd1234"
    held = shard / f".b.jpg{TEMP_MARK}{_HOST}-{2**22 + 17}-abcd1234"
    orphan.write_bytes(b"x")
    with held.open("wb") as writer:
        fcntl.flock(writer.fileno(), fcntl.LOCK_EX)
        assert storage.sweep_temp_files() == 1
        assert not orphan.exists() and held.exists()
    assert storage.sweep_temp_files() == 1  # its writer is gone now
    assert not held.exists()


def test_a_fifo_named_like_a_temp_file_does_not_hold_the_sweep(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    shard = tmp_path / "urls/g/00000"
    shard.mkdir(parents=True)
    os.mkfifo(shard / f".a.jpg{TEMP_MARK}{_HOST}-1-abcd1234")
    (shard / f".b.jpg{TEMP_MARK}{_HOST}-1-abcd1234").write_bytes(b"x")
    swept: list[int] = []
    sweeper = threading.Thread(target=lambda: swept.append(storage.sweep_temp_files()))
    sweeper.daemon = True  # without the fix it never returns
    sweeper.start()
    sweeper.join(30)
    assert swept == [2]


def test_a_sweep_between_a_temp_files_creation_and_its_lock_costs_the_write_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Another daemon's start-up sweep can find a temp file in the instant before its
    writer locks it, and remove it: the writer notices and starts again with a new one."""
    storage = LocalStorage(tmp_path)
    real_flock = fcntl.flock
    swept: list[int] = []

    def sweep_first(fd: int, operation: int) -> None:
        if operation == fcntl.LOCK_EX and not swept:  # the writer's lock, the first time
            swept.append(storage.sweep_temp_files())
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", sweep_first)
    storage.write_sync("urls/g/00000/a.jpg", b"\xff\xd8a")
    assert swept == [1]
    assert [p.name for p in (tmp_path / "urls/g/00000").iterdir()] == ["a.jpg"]
    assert (tmp_path / "urls/g/00000/a.jpg").read_bytes() == b"\xff\xd8a"


async def test_sync_fsyncs_each_directory_written_to_once_and_refuses_escapes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    synced: list[set[Path]] = []
    monkeypatch.setattr(
        "harvester.storage.local.fsync_directories", lambda dirs: synced.append(set(dirs))
    )
    storage = LocalStorage(tmp_path)
    for path in ("urls/g/00000/a.jpg", "urls/g/00000/b.jpg", "urls/g/00001/c.jpg"):
        storage.written(path)
    await storage.sync()
    storage.written("urls/g/00000/d.jpg")  # a folder seen before is synced again when written
    await storage.sync()
    await storage.sync()  # nothing new: no fsync at all
    root = storage.root  # resolved
    shards = {root / "urls/g/00000", root / "urls/g/00001"}
    assert synced == [shards, {root / "urls/g/00000"}]
    for escape in ("urls/g/00000/..", "../g/00000/a.jpg", "/urls/g/00000/a.jpg"):
        with pytest.raises(ValueError):
            storage.written(escape)
