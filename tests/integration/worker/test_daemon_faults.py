"""The daemon under faults that come from inside: a dead pool worker, a database hiccup,
the same bytes under two ids at once."""

from __future__ import annotations

import asyncio
import errno
import os
import signal
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError
from worker_harness import Harvest

from harvester.errors import DatabaseUnavailable
from harvester.outcomes import Failure, Result
from harvester.storage.layout import relative_path
from harvester.worker.context import open_context
from harvester.worker.daemon import Daemon, DaemonError, run_daemon


async def test_identical_bytes_under_two_ids_are_stored_once(harvest: Harvest) -> None:
    rows = harvest.rows(6)
    copies = [{**row, "id": f"copy-of-{row['id']}"} for row in rows]  # same URL, same bytes
    await harvest.submit(rows + copies, "faults")
    await run_daemon(harvest.settings(concurrency=8, max_attempts=4), until_idle=True)
    images = await harvest.images()
    stored = [r for r in images if r.state == "stored"]
    duplicates = [r for r in images if r.state == "skipped"]
    assert len(stored) == 6 and len(duplicates) == 6
    by_id = {r.id: r for r in stored}
    for copy in duplicates:
        original = by_id[copy.duplicate_of]
        assert copy.source_sha256 == original.source_sha256
        assert copy.reason == "duplicate" and copy.skip_reason.startswith("identical bytes")
        assert copy.path is None
        planned = relative_path(copy.provider, copy.group_name, copy.shard, copy.file_name)
        assert not (harvest.root / "data" / planned).exists()
    assert len(list((harvest.root / "data").rglob("*.jpg"))) == 6


async def test_a_killed_pool_worker_and_a_database_hiccup_lose_nothing(
    harvest: Harvest, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an image that hangs its worker is noticed in seconds
    settings = harvest.settings(concurrency=8, max_attempts=4, image_timeout_seconds=5)
    await harvest.submit(harvest.rows(40), "faults")
    async with open_context(settings, harvest.engine) as ctx:
        daemon = Daemon(ctx, until_idle=True)
        finish = daemon.images.queue.finish
        failed_once: list[bool] = []

        async def flaky_finish(owner: str, outcomes: Any) -> dict[int, str]:
            if outcomes and not failed_once:
                failed_once.append(True)
                locked = OperationalError("UPDATE images", {}, Exception("database is locked"))
                raise DatabaseUnavailable(str(locked)) from locked  # as harvester.db wraps it
            return await finish(owner, outcomes)

        monkeypatch.setattr(daemon.images.queue, "finish", flaky_finish)
        run = asyncio.create_task(daemon.run())
        # Outcomes have arrived (their first flush hit the hiccup): the harvest is under way.
        # The progress counts are no sign of it: they follow what a flush wrote, and the
        # retried flush may write all 40 at once.
        async with asyncio.timeout(60):
            while not failed_once and not run.done():  # noqa: ASYNC110
                await asyncio.sleep(0.005)
        assert not run.done(), run.exception()
        # One image worker dies mid-image: one holding two requests is on the first.
        async with asyncio.timeout(30):
            while not (busy := [pid for pid, n in ctx.pool.held().items() if n >= 2]):  # noqa: ASYNC110
                await asyncio.sleep(0.005)
        os.kill(busy[0], signal.SIGKILL)
        await asyncio.wait_for(run, 120)
    images = await harvest.images()
    assert failed_once, "the database hiccup never happened"
    assert any(r.attempts > 1 for r in images), "the dead worker cost no image a retry"
    assert [r.state for r in images] == ["stored"] * 40, [
        (r.provider_id, r.state, r.last_error) for r in images if r.state != "stored"
    ]


async def test_a_disk_error_while_syncing_stops_the_daemon_instead_of_retrying_as_a_database_error(
    harvest: Harvest, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await harvest.submit(harvest.rows(6), "faults")

    def failing_fsync(directories: Any) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr("harvester.storage.local.fsync_directories", failing_fsync)
    with pytest.raises(DaemonError, match="cannot sync files"):
        async with asyncio.timeout(60):
            await run_daemon(harvest.settings(), until_idle=True)
    assert all(r.state != "stored" for r in await harvest.images())
    logged = capsys.readouterr()
    assert "database_error" not in logged.out + logged.err


async def test_outcomes_written_before_a_database_hiccup_are_counted_once(
    harvest: Harvest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The outcomes of a flush are written, then its failures meet an outage: the flush is
    tried again for the failures alone, and the outcomes are counted, once."""
    await harvest.submit(harvest.rows(2), "faults")
    async with open_context(harvest.settings(), harvest.engine) as ctx:
        daemon = Daemon(ctx, until_idle=True)
        run_image, fail = daemon.images.runner, daemon.images.queue.fail
        together = asyncio.Barrier(2)  # both results wait for the same flush

        async def one_fails(ctx: Any, row: Any) -> Result:
            result = await run_image(ctx, row)
            await together.wait()
            return result if row.id == 1 else Failure(row.id, "gone", retryable=False)

        failed_once: list[bool] = []

        async def flaky_fail(owner: str, failures: Any) -> dict[int, str]:
            if failures and not failed_once:
                failed_once.append(True)
                raise DatabaseUnavailable("OperationalError: database is locked")
            return await fail(owner, failures)

        daemon.images.runner = one_fails
        monkeypatch.setattr(daemon.images.queue, "fail", flaky_fail)
        counted = await asyncio.wait_for(daemon.run(), 60)
    assert failed_once, "the database hiccup never happened"
    assert [r.state for r in await harvest.images()] == ["stored", "failed"]
    assert (counted.images["stored"], counted.images["failed"]) == (1, 1)
