"""A refused key pauses the campaigns using it after one call; the others go on; exit 3."""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from cli_runner import cli
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.models import Campaign, Image, Task
from harvester.emulator import MAPILLARY_TOKEN, RunningEmulator
from harvester.emulator.stats import key_label

WRONG_KEY = "not-our-flickr-key-0123456789"


def _calls_with(emulator: RunningEmulator, key: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{emulator.base_url}/_emulator/stats") as resp:
        stats: dict[str, Any] = json.load(resp)
    return dict(stats["keys"].get(key_label(key), {}))


async def test_a_refused_key_pauses_its_campaign_after_one_call_and_run_exits_3(
    database_url: str,
    engine: AsyncEngine,
    tmp_path: Path,
    emulator: RunningEmulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    for name, value in {
        "HARVESTER_DATABASE_URL": database_url,
        "HARVESTER_STORAGE_ROOT": str(tmp_path / "data"),
        "HARVESTER_FLICKR_API_URL": emulator.flickr_api_url,
        "HARVESTER_FLICKR_API_KEY": WRONG_KEY,
        "HARVESTER_MAPILLARY_API_URL": emulator.mapillary_api_url,
        "HARVESTER_MAPILLARY_TOKEN": MAPILLARY_TOKEN,  # the emulator's own: accepted
        "HARVESTER_PROCESSES": "2",
        "HARVESTER_BACKOFF_BASE_SECONDS": "0.05",
        "HARVESTER_BACKOFF_MAX_SECONDS": "0.2",
    }.items():
        monkeypatch.setenv(name, value)
    queries = tmp_path / "queries.txt"
    queries.write_text("castle\nbridge\nmarket\nforest\n")
    code, _, err = await cli(
        capsys, "submit", "flickr", "--campaign", "keys", "--queries", str(queries),
        "--min-upload-date", "2023-01-01", "--max-upload-date", "2023-12-31",
    )  # fmt: skip
    assert code == 0, err
    (sequence, _), *_ = emulator.world.mapillary_sequence_pairs()
    code, _, err = await cli(
        capsys, "submit", "mapillary", "--campaign", "seq", "--sequence", sequence
    )
    assert code == 0, err

    # The daemon in its own process: it installs signal handlers, as operators run it.
    daemon = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "harvester.cli", "run", "--until-idle",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(daemon.communicate(), 60)
    code, out, err = daemon.returncode, stdout.decode(), stderr.decode()

    assert code == 3, err
    assert "campaign 'keys' is paused (invalid_key)" in err and WRONG_KEY not in err + out
    calls = await asyncio.to_thread(
        _calls_with, emulator, WRONG_KEY
    )  # the emulator is on this loop
    assert (calls["total"], calls["invalid_key"]) == (1, 1)
    async with engine.connect() as connection:
        paused = dict(
            (await connection.execute(select(Campaign.name, Campaign.paused_reason))).all()
        )
        tasks = (
            await connection.execute(
                select(Campaign.name, Task.state, Task.reason, func.count())
                .join(Campaign, Campaign.id == Task.campaign_id)
                .group_by(Campaign.name, Task.state, Task.reason)
            )
        ).all()
        stored = (
            await connection.execute(
                select(func.count()).select_from(Image).where(Image.state == "stored")
            )
        ).scalar_one()
    assert paused == {"keys": "invalid_key", "seq": None}
    flickr = {(state, reason): n for name, state, reason, n in tasks if name == "keys"}
    # Tasks already in flight fail without a call ("refused before"); the rest wait.
    assert {state for state, _ in flickr} <= {"failed", "queued"}
    assert all(reason == "invalid_key" for state, reason in flickr if state == "failed")
    assert stored > 0  # the Mapillary campaign, with its good token, went on

    code, out, _ = await cli(capsys, "campaigns", "list")
    assert code == 0 and "paused (invalid_key)" in out
    code, out, _ = await cli(capsys, "status")
    assert code == 0 and "keys (flickr)  PAUSED invalid_key: Flickr error 100" in out
    assert "seq (mapillary)  finished" in out
