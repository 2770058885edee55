"""Flickr's CC 4.0 licences (ids 11-16, since June 2025) through a whole harvest: the
campaign's --license takes them, each stored photo is credited by its licence's name and
link, and the export filters read what each allows. The commands run as an operator's do."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from export_harvest import rows_of

from harvester.emulator import EmulatorConfig, RunningEmulator, WorldSize, start_emulator
from harvester.emulator.config import FLICKR_KEY

CC4 = {
    "11": ("CC BY 4.0", "https://creativecommons.org/licenses/by/4.0/"),
    "12": ("CC BY-SA 4.0", "https://creativecommons.org/licenses/by-sa/4.0/"),
    "13": ("CC BY-ND 4.0", "https://creativecommons.org/licenses/by-nd/4.0/"),
    "14": ("CC BY-NC 4.0", "https://creativecommons.org/licenses/by-nc/4.0/"),
    "15": ("CC BY-NC-SA 4.0", "https://creativecommons.org/licenses/by-nc-sa/4.0/"),
    "16": ("CC BY-NC-ND 4.0", "https://creativecommons.org/licenses/by-nc-nd/4.0/"),
}
# In the emulator's world of 400 photos (seed 7), these find photos under each of 11-16.
QUERIES = "castle\nbridge\nstreet\nbeach\n"


@pytest.fixture
async def emulator() -> AsyncIterator[RunningEmulator]:
    world = WorldSize(flickr_photos=400, mapillary_dense_images=10)
    running = await start_emulator(EmulatorConfig(world=world))
    yield running
    await running.close()


async def _harvester(env: dict[str, str], *argv: str) -> str:
    """`harvester *argv` in its own process (the emulator serves on this loop meanwhile)."""
    command = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "harvester.cli", *argv, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(command.communicate(), 180)
    assert command.returncode == 0, err.decode()
    return out.decode()


async def test_flickr_cc_4_0_photos_are_harvested_credited_and_filtered_by_their_licence(
    emulator: RunningEmulator, sqlite_url: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "HARVESTER_DATABASE_URL": sqlite_url,
        "HARVESTER_STORAGE_ROOT": str(tmp_path / "data"),
        "HARVESTER_FLICKR_API_URL": emulator.flickr_api_url,
        "HARVESTER_FLICKR_API_KEY": FLICKR_KEY,
        "HARVESTER_PROCESSES": "2",
        "HARVESTER_BACKOFF_BASE_SECONDS": "0.05",
        "HARVESTER_BACKOFF_MAX_SECONDS": "0.2",
    }
    queries = tmp_path / "queries.txt"
    queries.write_text(QUERIES)
    await _harvester(
        env, "submit", "flickr", "--campaign", "cc4", "--queries", str(queries),
        "--min-upload-date", "2008-01-01", "--max-upload-date", "2023-12-31",
        "--license", ",".join(CC4),
    )  # fmt: skip
    await _harvester(env, "run", "--until-idle")

    credited = tmp_path / "credits"
    await _harvester(
        env, "export", "--campaign", "cc4", "--format", "attribution", "--out", str(credited)
    )
    credits = rows_of(credited / "attribution.csv")
    assert {r["license_id"] for r in credits} == set(CC4)  # each of them, and only them
    for row in credits:
        name, url = CC4[row["license_id"]]
        assert (row["license_name"], row["license_url"]) == (name, url)
        assert row["attribution"].endswith(f", {name} ({url})")
    md = (credited / "ATTRIBUTION.md").read_text()
    assert "no licence granted" not in md  # every CC licence grants reuse on its terms
    for name, url in CC4.values():
        assert f"| [{name}]({url}) |" in md

    async def kept(*flags: str) -> set[str]:
        out = tmp_path / "-".join(flags).strip("-").replace("/", "_")
        argv = ("export", "--campaign", "cc4", "--format", "csv", "--out", str(out), *flags)
        await _harvester(env, *argv)
        return {r["license_id"] for r in rows_of(out / "images.csv")}

    assert await kept("--commercial-ok") == {"11", "12", "13"}
    assert await kept("--derivatives-ok") == {"11", "12", "14", "15"}
    assert await kept("--license", "CC-BY-NC-ND-4.0") == {"16"}
    assert await kept("--license", "https://creativecommons.org/licenses/by/4.0/") == {"11"}
