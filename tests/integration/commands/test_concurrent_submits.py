"""Submits to one new campaign at once: a failing one's undo never takes another's rows.

The failing submit reads its URL list from a FIFO, so the test orders it against the other
by file events alone: opening the FIFO for writing returns once the submit has opened it
(it has looked for the campaign and not found it), and a write returns once the submit has
read all but what the pipe and its buffers hold (it has processed the rows before that).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import pytest
from sqlalchemy import select, update

from harvester.db.models import Campaign, Image
from harvester.db.queue import Queue
from harvester.db.session import create_engine

CAMPAIGN = "shared"
# Rows of ~600 bytes: 1500 are far more than a pipe (64 KiB) and the reader's buffers hold,
# so a write of them returns only once the submit has processed its first rows (made or
# joined the campaign, and flushed a batch of 1000 of its own). Not many more: an undo's
# delete checks images.duplicate_of, which has no index, once per image it deletes.
FAR_DOWN = 1500
GOOD = 50
TITLE = "t" * 500
# Valid UTF-8 up to this file's read, then a byte that is not: the submit fails there.
BAD_LINE = b"http://img.example/\xff.jpg\n"
HEADER = b"url,id,title\n"


def _rows(prefix: str, count: int) -> bytes:
    return "".join(
        f"http://img.example/{prefix}{n}.jpg,{prefix}{n}\n" for n in range(count)
    ).encode()


def _harvester(database_url: str, cwd: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "harvester.cli", "--database-url", database_url, *args]


def _submit(database_url: str, cwd: Path, listing: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _harvester(database_url, cwd, "submit", "urls", "--campaign", CAMPAIGN, str(listing)),
        capture_output=True, text=True, timeout=120, cwd=cwd, env=os.environ,
    )  # fmt: skip


@contextmanager
def _fed_submit(
    database_url: str, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[str], BinaryIO]]:
    """A submit reading its list from a FIFO, and the FIFO's write end: open only once the
    submit has opened its list, i.e. has found no campaign of that name."""
    fifo = tmp_path / "fed.csv"
    os.mkfifo(fifo)
    command = _harvester(
        database_url, tmp_path, "submit", "urls", "--campaign", CAMPAIGN, str(fifo)
    )
    fed = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path
    )
    try:
        with fifo.open("wb") as feed:
            yield fed, feed
    except BaseException:
        fed.kill()
        fed.communicate()
        raise


def _good_list(tmp_path: Path) -> Path:
    listing = tmp_path / "good.csv"
    listing.write_bytes(HEADER + _rows("good", GOOD))
    return listing


def _image_ids(database_url: str) -> set[str]:
    """The provider ids of the campaign's images; empty when there is no such campaign."""

    async def read() -> set[str]:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as connection:
                rows = await connection.execute(
                    select(Image.provider_id)
                    .join(Campaign, Campaign.id == Image.campaign_id)
                    .where(Campaign.name == CAMPAIGN)
                )
                return {provider_id.partition(":")[2] for (provider_id,) in rows}
        finally:
            await engine.dispose()

    return asyncio.run(read())


def _campaigns(database_url: str, cwd: Path) -> str:
    listed = subprocess.run(
        _harvester(database_url, cwd, "campaigns", "list"),
        capture_output=True, text=True, timeout=120, cwd=cwd, env=os.environ,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    return listed.stdout


def _failed_on_the_bad_line(fed: subprocess.Popen[str]) -> str:
    _, err = fed.communicate(timeout=120)
    assert fed.returncode == 2 and "not UTF-8 text" in err and "Traceback" not in err, err
    return err


def _good_rows_kept(database_url: str) -> None:
    ids = _image_ids(database_url)
    assert {f"good{n}" for n in range(GOOD)} <= ids, len(ids)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        # The good one made the campaign, the fed one joined it, added a batch and failed.
        (b"", HEADER + _rows("fed", FAR_DOWN) + BAD_LINE),
        # The fed one made it and added a batch, the good one joined it, the fed one failed.
        (HEADER + _rows("fed", FAR_DOWN), BAD_LINE),
    ],
    ids=["fails-after-joining", "fails-after-another-joined"],
)
def test_a_submit_failing_keeps_what_a_concurrent_submit_added_to_the_new_campaign(
    database_url: str, tmp_path: Path, before: bytes, after: bytes
) -> None:
    """Both found no campaign; the good one finished between the fed one's `before` and
    `after`, then the fed one failed: its undo deleted the campaign with the good rows."""
    with _fed_submit(database_url, tmp_path) as (fed, feed):
        feed.write(before)
        feed.flush()
        good = _submit(database_url, tmp_path, _good_list(tmp_path))
        assert good.returncode == 0, good.stderr
        feed.write(after)
    _failed_on_the_bad_line(fed)
    _good_rows_kept(database_url)


def test_a_lone_submit_failing_deep_in_its_list_leaves_no_campaign(
    database_url: str, tmp_path: Path
) -> None:
    listing = tmp_path / "bad.csv"
    listing.write_bytes(HEADER + _rows("lone", FAR_DOWN) + BAD_LINE)
    failed = _submit(database_url, tmp_path, listing)
    assert failed.returncode == 2 and "not UTF-8 text" in failed.stderr, failed.stderr
    assert "no campaigns yet" in _campaigns(database_url, tmp_path)


def test_a_campaign_whose_creating_submit_was_killed_is_resumed_and_kept_by_later_submits(
    database_url: str, tmp_path: Path
) -> None:
    """The killed submit's mark stays on the campaign; a later submit still adds to it, and
    one that then fails keeps it."""
    with _fed_submit(database_url, tmp_path) as (fed, feed):
        feed.write(HEADER + _rows("fed", FAR_DOWN))
        feed.flush()
        fed.send_signal(signal.SIGKILL)
        fed.communicate(timeout=120)
    resumed = _submit(database_url, tmp_path, _good_list(tmp_path))
    assert resumed.returncode == 0, resumed.stderr
    failing = tmp_path / "bad.csv"
    failing.write_bytes(HEADER + _rows("late", FAR_DOWN) + BAD_LINE)
    failed = _submit(database_url, tmp_path, failing)
    assert failed.returncode == 2 and "not UTF-8 text" in failed.stderr, failed.stderr
    _good_rows_kept(database_url)


def _take_rows(database_url: str, store: bool) -> None:
    """Once the fed submit's first batch is in, what a daemon does: claim some of its rows
    (and, with `store`, record one stored and let the rest go)."""

    async def take() -> None:
        engine = create_engine(database_url)
        try:
            queue = Queue(engine, Image)
            deadline = time.monotonic() + 60
            while not (claimed := await queue.claim("daemon-1", 4, 300)):
                assert time.monotonic() < deadline, "the submit never added a batch"
                await asyncio.sleep(0.05)
            if store:
                async with engine.begin() as connection:
                    ids = [row.id for row in claimed]
                    await connection.execute(
                        update(Image)
                        .where(Image.id.in_(ids))
                        .values(state="queued", lease_owner=None, lease_expires_at=None)
                    )
                    await connection.execute(
                        update(Image)
                        .where(Image.id == ids[0])
                        .values(state="stored", path="urls/shared/00000/a.jpg")
                    )
        finally:
            await engine.dispose()

    asyncio.run(take())


def _claimable(database_url: str) -> int:
    async def claim() -> int:
        engine = create_engine(database_url)
        try:
            return len(await Queue(engine, Image).claim("daemon-2", 100, 300))
        finally:
            await engine.dispose()

    return asyncio.run(claim())


@pytest.mark.parametrize("begun", ["held", "stored"])
def test_a_failing_submit_pauses_and_keeps_a_campaign_a_daemon_has_begun(
    database_url: str, tmp_path: Path, begun: str
) -> None:
    """A daemon took rows of the new campaign while its submit was still reading: the
    failing submit's undo cannot delete what is in flight or on disk, so it pauses the
    campaign (nothing more of it is fetched), says so, and still reports its own error."""
    with _fed_submit(database_url, tmp_path) as (fed, feed):
        feed.write(HEADER + _rows("fed", FAR_DOWN))
        feed.flush()
        _take_rows(database_url, store=begun == "stored")
        feed.write(BAD_LINE)
    err = _failed_on_the_bad_line(fed)
    assert f"campaign {CAMPAIGN!r} is kept, paused" in err, err
    shown = subprocess.run(
        _harvester(database_url, tmp_path, "campaigns", "show", CAMPAIGN),
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=os.environ,
    )  # fmt: skip
    assert "(submit_failed)" in shown.stdout and "not UTF-8 text" in shown.stdout, shown.stdout
    assert _claimable(database_url) == 0
