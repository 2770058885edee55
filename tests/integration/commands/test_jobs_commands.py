"""`harvester jobs ...` on a real harvest: reasons listed, retried by reason, history kept."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from cli_runner import cli, cli_out
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.models import Image
from harvester.emulator import RunningEmulator
from harvester.sources.urls import UrlCampaign, submit_urls
from harvester.worker.daemon import run_daemon

CLOSED_PORT = "http://127.0.0.1:9"  # discard port: nothing listens, the connection is refused
PERMANENT = {"truncated", "empty", "html", "bomb", "unknown_format", "http_404"}


async def _harvest(
    database_url: str, engine: AsyncEngine, tmp_path: Path, emulator: Any, quick_settings: Any
) -> None:
    rows = emulator.world.url_list(63, base_url=emulator.base_url)
    for i in range(3):
        rows.append({**rows[0], "id": f"down{i}", "url": f"{CLOSED_PORT}/x{i}.jpg?api_key=s3cr3t"})
    listing = tmp_path / "list.csv"
    with listing.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    await submit_urls(engine, UrlCampaign("web", listing), max_attempts=2)
    await run_daemon(quick_settings(database_url, max_attempts=2), until_idle=True)


async def _failed(engine: AsyncEngine) -> dict[str, list[Any]]:
    by_reason: dict[str, list[Any]] = {}
    async with engine.connect() as connection:
        for row in await connection.execute(select(Image).where(Image.state == "failed")):
            by_reason.setdefault(row.reason, []).append(row)
    return by_reason


async def test_retry_requeues_only_transient_failures_unless_reasons_are_named(
    database_url: str,
    engine: AsyncEngine,
    tmp_path: Path,
    emulator: RunningEmulator,
    quick_settings: Any,
    capsys: pytest.CaptureFixture[str],
):
    await _harvest(database_url, engine, tmp_path, emulator, quick_settings)
    db = ("--database-url", database_url)
    failed = await _failed(engine)
    assert set(failed) == PERMANENT | {"connection"}
    assert len(failed["connection"]) == 3 and all(r.retryable for r in failed["connection"])
    assert not any(r.retryable for code in PERMANENT for r in failed[code])

    dry = await cli_out(capsys, *db, "jobs", "retry", "--campaign", "web", "--dry-run")
    assert "would queue again       3 images  reason connection" in dry
    assert {k: len(v) for k, v in (await _failed(engine)).items()} == {
        k: len(v) for k, v in failed.items()
    }  # nothing changed

    done = await cli_out(capsys, *db, "jobs", "retry", "--campaign", "web")
    assert "queued again       3 images  reason connection" in done
    assert "queued again 3 rows in all" in done
    async with engine.connect() as connection:
        again = (await connection.execute(select(Image).where(Image.state == "queued"))).all()
    assert {r.provider_id.split(":")[-1] for r in again} == {"down0", "down1", "down2"}
    # The history stays: the count of requeues, the last error and its code.
    assert all((r.requeues, r.attempts, r.reason) == (1, 0, "connection") for r in again)
    assert all("gave up after 2 attempts" in r.last_error for r in again)
    assert set(await _failed(engine)) == PERMANENT

    named = await cli_out(
        capsys, *db, "jobs", "retry", "--campaign", "web", "--reason", "html", "http_404"
    )
    assert "queued again 2 rows in all" in named
    assert set(await _failed(engine)) == PERMANENT - {"html", "http_404"}


async def test_jobs_list_filters_by_reason_and_show_redacts_the_source_url(
    sqlite_url: str,
    sqlite_engine: AsyncEngine,
    tmp_path: Path,
    emulator: RunningEmulator,
    quick_settings: Any,
    capsys: pytest.CaptureFixture[str],
):
    await _harvest(sqlite_url, sqlite_engine, tmp_path, emulator, quick_settings)
    db = ("--database-url", sqlite_url)
    listed = json.loads(
        await cli_out(capsys, *db, "jobs", "list", "--reason", "connection", "--json")
    )["jobs"]
    assert len(listed) == 3 and {j["kind"] for j in listed} == {"image"}
    assert all(j["state"] == "failed" and j["campaign"] == "web" for j in listed)

    table = await cli_out(capsys, *db, "jobs", "list", "--kind", "image", "--state", "failed")
    lines = table.splitlines()
    assert len(lines) == 1 + 9 and all(len(line) <= 80 for line in lines)
    assert any(" bomb " in line for line in lines)

    shown = await cli_out(capsys, *db, "jobs", "show", str(listed[0]["id"]))
    assert "source_url" in shown and "127.0.0.1:9/x" in shown
    assert "s3cr3t" not in shown
    assert "reason: connection" in shown.replace("  ", "")


async def test_jobs_show_of_an_unknown_id_is_one_clear_line(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
):
    code, _, err = await cli(capsys, "--database-url", sqlite_url, "jobs", "show", "99")
    assert (
        code == 2
        and err.strip() == "harvester: no image with id 99; `harvester jobs list` shows ids"
    )


async def test_status_fits_80_columns_with_rates_eta_and_top_reasons(
    database_url: str,
    engine: AsyncEngine,
    tmp_path: Path,
    emulator: RunningEmulator,
    quick_settings: Any,
    capsys: pytest.CaptureFixture[str],
):
    await _harvest(database_url, engine, tmp_path, emulator, quick_settings)
    db = ("--database-url", database_url)
    table = await cli_out(capsys, *db, "status")  # stdout is not a TTY here: still a table
    lines = table.splitlines()
    assert lines[0] == "web (urls)  finished" and all(len(line) <= 80 for line in lines)
    assert "100.0% done" in table and "ETA done" in table
    failed = next(line for line in lines if line.startswith("  failed "))
    assert "connection 3" in failed
    report = json.loads(await cli_out(capsys, *db, "status", "--json", "--campaign", "web"))
    (web,) = report["campaigns"]
    assert web["images"]["stored"] == 56 and web["percent_done"] == 100.0
    assert web["failed"]["connection"] == 3 and web["skipped"] == {"too_small": 1}
    # 66 rows finished within the last minute: the 1-minute rate is at least 66/60 a second.
    assert web["images_per_s"]["1m"] >= 1.1 and web["eta_s"] == 0.0
