"""`harvester campaigns ...`: pause stops claims without cancelling, delete waits for daemons."""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cli_runner import cli
from defaults import MAX_ATTEMPTS
from s3_server import moto_s3
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.campaigns import ensure_campaign
from harvester.db.catalog import add_images
from harvester.db.models import Campaign, Image, ImageHit
from harvester.db.queue import Queue
from harvester.emulator import RunningEmulator
from harvester.records import FoundImage
from harvester.sources.urls import UrlCampaign, submit_urls
from harvester.storage.base import Storage
from harvester.storage.local import LocalStorage
from harvester.storage.removals import PENDING_DIR, Removals
from harvester.storage.s3 import S3Storage
from harvester.worker.daemon import run_daemon


async def _submit(
    engine: AsyncEngine, tmp_path: Path, emulator: Any, name: str, images: range
) -> None:
    """Distinct images per campaign: identical bytes would be skipped as duplicates."""
    rows = emulator.world.url_list(images.stop, base_url=emulator.base_url, hostile=False)
    rows = [{**row, "id": f"{name}-{row['id']}"} for row in rows[images.start :]]
    listing = tmp_path / f"{name}.csv"
    with listing.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    await submit_urls(engine, UrlCampaign(name, listing), max_attempts=MAX_ATTEMPTS)


async def _states(engine: AsyncEngine) -> dict[tuple[int, str], int]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(Image.campaign_id, Image.state, func.count()).group_by(
                Image.campaign_id, Image.state
            )
        )
        return {(c, s): n for c, s, n in rows}


async def test_a_paused_campaign_keeps_its_rows_queued_while_others_run_and_resumes(
    database_url: str,
    engine: AsyncEngine,
    tmp_path: Path,
    emulator: RunningEmulator,
    quick_settings: Any,
    capsys: pytest.CaptureFixture[str],
):
    db = ("--database-url", database_url)
    await _submit(engine, tmp_path, emulator, "held", range(0, 4))
    await _submit(engine, tmp_path, emulator, "free", range(4, 8))
    code, out, _ = await cli(capsys, *db, "campaigns", "pause", "held")
    assert code == 0 and "paused" in out

    await run_daemon(quick_settings(database_url), until_idle=True)
    assert await _states(engine) == {(1, "queued"): 4, (2, "stored"): 4}
    code, out, _ = await cli(capsys, *db, "campaigns", "list", "--json")
    listed = {c["name"]: c for c in json.loads(out)["campaigns"]}
    assert listed["held"]["paused_reason"] == "paused" and listed["free"]["paused_at"] is None

    code, out, _ = await cli(capsys, *db, "campaigns", "resume", "held")
    assert code == 0 and "resumed" in out
    await run_daemon(quick_settings(database_url), until_idle=True)
    assert await _states(engine) == {(1, "stored"): 4, (2, "stored"): 4}


async def test_delete_is_refused_while_a_daemon_holds_rows_then_removes_rows_and_files(
    sqlite_url: str,
    sqlite_engine: AsyncEngine,
    tmp_path: Path,
    emulator: RunningEmulator,
    quick_settings: Any,
    capsys: pytest.CaptureFixture[str],
):
    settings = quick_settings(sqlite_url)
    db = ("--database-url", sqlite_url, "--storage-root", str(settings.storage_root))
    await _submit(sqlite_engine, tmp_path, emulator, "gone", range(0, 3))
    await _submit(sqlite_engine, tmp_path, emulator, "kept", range(3, 6))
    await run_daemon(settings, until_idle=True)
    files = sorted(settings.storage_root.rglob("*.jpg"))
    assert len(files) == 6
    await _submit(sqlite_engine, tmp_path, emulator, "gone", range(6, 8))  # one claimed now
    (held,) = await Queue(sqlite_engine, Image).claim("another-daemon", 1, 600)

    code, _, err = await cli(capsys, *db, "campaigns", "delete", "gone", "--files")
    assert code == 2 and "a daemon holds 1 of its images" in err and "Traceback" not in err
    assert len(list(settings.storage_root.rglob("*.jpg"))) == 6

    await Queue(sqlite_engine, Image).release("another-daemon", [held.id])
    code, out, _ = await cli(capsys, *db, "campaigns", "delete", "gone", "--files")
    assert code == 0 and "3 files removed" in out
    left = sorted(settings.storage_root.rglob("*.jpg"))
    assert len(left) == 3 and all("kept" in p.parent.parent.name for p in left)
    assert set(await _states(sqlite_engine)) == {(2, "stored")}
    code, out, _ = await cli(capsys, *db, "campaigns", "show", "kept")
    assert code == 0 and "kept (urls)" in out


def _found(name: str) -> FoundImage:
    return FoundImage(provider_id=name, group="paris", file_name=f"{name}.jpg", source_url=None)


async def _two_campaigns_sharing(engine: AsyncEngine, storage: Storage) -> dict[str, int]:
    """'gone' owns four images: `shared` (found by 'kept' too), `copied` (whose bytes a
    duplicate row of 'kept' points at), `own` and `own2`; 'kept' owns `dup` and `mine`.
    Every image but `dup` is stored with a real file in the storage."""
    gone = await ensure_campaign(engine, "gone", "flickr", {})
    kept = await ensure_campaign(engine, "kept", "flickr", {})
    finds = [
        (gone, "q", ("shared", "copied", "own")),
        (gone, "q2", ("own2",)),
        (kept, "k", ("shared", "dup", "mine")),
    ]
    for campaign, query, names in finds:
        found = [_found(n) for n in names]
        await add_images(engine, campaign, "flickr", query, found, max_attempts=MAX_ATTEMPTS)
    async with engine.begin() as connection:
        rows = await connection.execute(select(Image.provider_id, Image.id))
        ids = {name: int(image_id) for name, image_id in rows}
        for name, image_id in ids.items():
            if name == "dup":
                values: dict[str, Any] = {"state": "skipped", "duplicate_of": ids["copied"]}
            else:
                values = {"state": "stored", "path": f"flickr/paris/00000/{name}.jpg"}
                await storage.write(values["path"], f"bytes of {name}".encode())
            await connection.execute(update(Image).where(Image.id == image_id).values(**values))
    return ids


async def _owners(engine: AsyncEngine) -> dict[str, tuple[str, str | None, int | None]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(Image.provider_id, Campaign.name, Image.path, Image.duplicate_of).join(Campaign)
        )
        return {image: (campaign, path, dup) for image, campaign, path, dup in rows}


def _files(root: Path) -> set[str]:
    return {p.stem for p in root.rglob("*.jpg")}


@dataclass(frozen=True)
class Sharing:
    root: Path
    argv: tuple[str, ...]  # the database and storage options of the command line
    ids: dict[str, int]


@pytest.fixture
async def sharing(database_url: str, engine: AsyncEngine, tmp_path: Path) -> Sharing:
    root = tmp_path / "data"
    ids = await _two_campaigns_sharing(engine, LocalStorage(root))
    return Sharing(root, ("--database-url", database_url, "--storage-root", str(root)), ids)


async def test_delete_keeps_images_another_campaign_found_or_copies_with_their_files(
    sharing: Sharing, engine: AsyncEngine, capsys: pytest.CaptureFixture[str]
):
    root, argv, ids = sharing.root, sharing.argv, sharing.ids
    code, out, err = await cli(capsys, *argv, "campaigns", "delete", "gone", "--files")
    assert code == 0, err
    assert "2 files removed" in out and "2 images other campaigns refer to stay" in out
    owners = await _owners(engine)
    assert set(owners) == {"shared", "copied", "dup", "mine"}
    assert {owners[n][0] for n in owners} == {"kept"}
    assert owners["dup"][2] == ids["copied"]
    assert _files(root) == {"shared", "copied", "mine"}
    async with engine.connect() as connection:
        hits = (await connection.execute(select(ImageHit.image_id, ImageHit.query))).all()
    assert sorted(hits) == sorted([(ids["shared"], "k"), (ids["dup"], "k"), (ids["mine"], "k")])


async def test_delete_with_files_from_a_root_that_holds_none_of_them_changes_nothing(
    sharing: Sharing, engine: AsyncEngine, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    """It deleted the rows and removed nothing ('0 files removed'): their files stayed under
    the real root, named by no row and no list, for ever (and made the wrong root)."""
    before = await _owners(engine)
    wrong = tmp_path / "not-the-root"
    argv = (*sharing.argv[:2], "--storage-root", str(wrong))
    code, out, err = await cli(capsys, *argv, "campaigns", "delete", "gone", "--files")
    assert code == 2 and out == "", (out, err)
    assert err.strip().splitlines() == [
        f"harvester: none of the 2 stored images of campaign 'gone' is under the storage root "
        f"{wrong}: pass the --storage-root (HARVESTER_STORAGE_ROOT) the daemon wrote to, or "
        "delete without --files to keep them; nothing was deleted"
    ]
    assert await _owners(engine) == before and len(_files(sharing.root)) == 5
    assert not wrong.exists()


def _ctrl_c_on_second_remove(
    monkeypatch: pytest.MonkeyPatch, backend: type[LocalStorage] | type[S3Storage]
) -> list[str]:
    """The backend's second `remove` is a Ctrl-C (the others remove); returns the calls."""
    remove = backend.remove
    calls: list[str] = []

    async def ctrl_c_on_second(self: Any, relative: str) -> bool:
        calls.append(relative)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return await remove(self, relative)

    monkeypatch.setattr(backend, "remove", ctrl_c_on_second)
    return calls


async def test_delete_interrupted_while_removing_files_is_finished_by_running_it_again(
    sharing: Sharing,
    engine: AsyncEngine,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
):
    root, argv = sharing.root, sharing.argv
    calls = _ctrl_c_on_second_remove(monkeypatch, LocalStorage)
    code, _, _ = await cli(capsys, *argv, "campaigns", "delete", "gone", "--files")
    assert code == 130 and len(calls) == 2
    assert {c for c, _, _ in (await _owners(engine)).values()} == {"kept"}
    assert len(_files(root)) == 4  # one of its two files went before the interrupt

    code, out, err = await cli(capsys, *argv, "campaigns", "delete", "gone", "--files")
    assert code == 0, err
    assert "'gone': its interrupted delete finished, 1 files removed" in out
    assert _files(root) == {"shared", "copied", "mine"}


async def test_delete_interrupted_before_its_rows_commit_changes_nothing(
    sharing: Sharing,
    engine: AsyncEngine,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
):
    root, argv = sharing.root, sharing.argv
    before = await _owners(engine)
    record = Removals.record

    async def recorded_then_ctrl_c(self: Removals, campaign: str, paths: list[str]) -> None:
        await record(self, campaign, paths)
        raise KeyboardInterrupt

    monkeypatch.setattr(Removals, "record", recorded_then_ctrl_c)
    code, _, _ = await cli(capsys, *argv, "campaigns", "delete", "gone", "--files")
    assert code == 130
    assert await _owners(engine) == before
    assert len(_files(root)) == 5
    monkeypatch.setattr(Removals, "record", record)

    code, out, err = await cli(capsys, *argv, "campaigns", "delete", "gone", "--files")
    assert code == 0 and "interrupted" not in out and "2 files removed" in out, err
    assert _files(root) == {"shared", "copied", "mine"}


BUCKET = "deletes"
STAYING = [f"flickr/paris/00000/{name}.jpg" for name in ("copied", "mine", "shared")]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    pytest.importorskip("moto.server", reason="moto[server] is a dev dependency")
    with moto_s3(BUCKET) as endpoint:
        yield endpoint


@pytest.fixture
def bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3Storage:
    """A prefix of its own in moto's bucket, named by HARVESTER_STORAGE_URL for the command."""
    url = f"s3://{BUCKET}/{uuid.uuid4().hex}"
    env = {
        "AWS_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": "test-access-key",
        "AWS_SECRET_ACCESS_KEY": "test-secret-key", "AWS_REGION": "us-east-1",
    }  # fmt: skip
    for name, value in {**env, "HARVESTER_STORAGE_URL": url}.items():
        monkeypatch.setenv(name, value)
    return S3Storage(url, env)


async def test_delete_with_files_removes_the_objects_from_an_s3_bucket(
    sqlite_url: str,
    sqlite_engine: AsyncEngine,
    tmp_path: Path,
    bucket: S3Storage,
    capsys: pytest.CaptureFixture[str],
):
    await _two_campaigns_sharing(sqlite_engine, bucket)
    local = tmp_path / "data"  # the storage root: nothing lives there when a bucket is named
    argv = ("--database-url", sqlite_url, "--storage-root", str(local))
    code, out, err = await cli(capsys, *argv, "campaigns", "delete", "gone", "--files")
    assert code == 0, err
    assert "2 files removed" in out and "2 images other campaigns refer to stay" in out
    assert await bucket.list() == STAYING  # its own two objects and its list are gone
    assert not local.exists()


async def test_a_delete_interrupted_on_s3_keeps_its_list_in_the_bucket_for_the_next_run(
    sqlite_url: str,
    sqlite_engine: AsyncEngine,
    tmp_path: Path,
    bucket: S3Storage,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
):
    await _two_campaigns_sharing(sqlite_engine, bucket)
    argv = ("--database-url", sqlite_url, "--storage-root", str(tmp_path / "data"))
    calls = _ctrl_c_on_second_remove(monkeypatch, S3Storage)
    code, _, _ = await cli(capsys, *argv, "campaigns", "delete", "gone", "--files")
    assert code == 130 and len(calls) == 2
    assert len(await bucket.list(PENDING_DIR)) == 1  # in the bucket, for any host to finish
    assert len(await bucket.list()) == 1 + 4  # the list, and one of its two objects went

    code, out, err = await cli(capsys, *argv, "campaigns", "delete", "gone", "--files")
    assert code == 0, err
    assert "'gone': its interrupted delete finished, 1 files removed" in out
    assert await bucket.list() == STAYING
