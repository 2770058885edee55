"""`harvester campaigns ...`: pause stops claims without cancelling, delete waits for daemons."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.cli import main
from harvester.db.models import Image
from harvester.db.queue import Queue
from harvester.emulator import RunningEmulator
from harvester.sources.urls import UrlCampaign, submit_urls
from harvester.worker.daemon import run_daemon


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The real command line, in a thread (it runs its own event loop)."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(argv))
    structlog.reset_defaults()  # main() pointed the logs at a stream capsys will close
    out, err = capsys.readouterr()
    return code, out, err


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
    await submit_urls(engine, UrlCampaign(name, listing))


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
