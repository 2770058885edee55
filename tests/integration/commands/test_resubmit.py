"""Re-submitting a campaign: the same settings resume it, other settings need --update."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from cli_runner import cli
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.models import Campaign, Image, Task


async def _campaign(engine: AsyncEngine, name: str) -> tuple[dict[str, object], int, int]:
    """The stored settings, the number of tasks and of images of one campaign."""
    async with engine.connect() as connection:
        campaign_id, settings = (
            await connection.execute(
                select(Campaign.id, Campaign.settings).where(Campaign.name == name)
            )
        ).one()
        tasks = await connection.scalar(
            select(func.count()).select_from(Task).where(Task.campaign_id == campaign_id)
        )
        images = await connection.scalar(
            select(func.count()).select_from(Image).where(Image.campaign_id == campaign_id)
        )
    return dict(settings), int(tasks or 0), int(images or 0)


async def test_a_region_resubmitted_with_another_bbox_is_refused_unless_update(
    database_url: str, engine: AsyncEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ("--database-url", database_url)
    first = ("submit", "mapillary", "--campaign", "bx", "--bbox", "4.30,50.80,4.32,50.82")
    assert (await cli(capsys, *db, *first))[0] == 0
    before = await _campaign(engine, "bx")
    assert (await cli(capsys, *db, *first))[0] == 0  # the same settings: resumed, no-op
    assert await _campaign(engine, "bx") == before

    moved = ("submit", "mapillary", "--campaign", "bx", "--bbox", "4.40,50.80,4.42,50.82")
    code, _, err = await cli(capsys, *db, *moved)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "bbox: [4.3, 50.8, 4.32, 50.82] -> [4.4, 50.8, 4.42, 50.82]" in lines[0]
    assert "--update" in lines[0]
    assert await _campaign(engine, "bx") == before  # nothing added, nothing changed

    code, _, err = await cli(capsys, *db, *moved, "--update")
    assert code == 0, err
    settings, tasks, _ = await _campaign(engine, "bx")
    assert settings["bbox"] == [4.4, 50.8, 4.42, 50.82]
    assert tasks > before[1]  # the new region's tiles are queued beside the old ones


async def test_a_second_url_list_joins_its_campaign_but_other_sizes_are_refused(
    sqlite_url: str, sqlite_engine: AsyncEngine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lists = []
    for name, start in (("a.csv", 0), ("b.csv", 10)):
        path = tmp_path / name
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "url"])
            writer.writerows(
                (f"r{i}", f"https://example.org/{i}.jpg") for i in range(start, start + 3)
            )
        lists.append(str(path))
    db = ("--database-url", sqlite_url)
    assert (await cli(capsys, *db, "submit", "urls", "--campaign", "u", lists[0]))[0] == 0
    assert (await cli(capsys, *db, "submit", "urls", "--campaign", "u", lists[1]))[0] == 0
    settings, _, images = await _campaign(sqlite_engine, "u")
    assert images == 6 and settings["source_file"] == lists[0]

    code, _, err = await cli(
        capsys, *db, "submit", "urls", "--campaign", "u", "--max-side", "512", lists[1]
    )
    assert code == 2 and "max_side: 1024 -> 512" in err, err
    code, _, err = await cli(
        capsys, *db, "submit", "urls", "--campaign", "u", "--max-side", "512", "--update", lists[1]
    )
    assert code == 0, err
    settings, _, images = await _campaign(sqlite_engine, "u")
    assert settings["max_side"] == 512 and settings["source_file"] == lists[0] and images == 6
