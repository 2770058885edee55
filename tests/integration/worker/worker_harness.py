"""What the in-process daemon tests here start from: a migrated SQLite database, the
emulator, and settings for a harvest into tmp_path/data (the `harvest` fixture)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from defaults import MAX_ATTEMPTS
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.config import Settings
from harvester.db.models import Image
from harvester.emulator import RunningEmulator
from harvester.sources.urls import UrlCampaign, submit_urls


@dataclass(frozen=True)
class Harvest:
    url: str
    engine: AsyncEngine
    root: Path
    emulator: RunningEmulator
    make_settings: Callable[..., Settings]

    def rows(self, count: int) -> list[dict[str, str]]:
        return self.emulator.world.url_list(count, base_url=self.emulator.base_url, hostile=False)

    async def submit(
        self, rows: list[dict[str, str]], name: str, *, max_attempts: int = MAX_ATTEMPTS
    ) -> None:
        """A URL list of the rows' url, id, and lat and lon where they have them."""
        listing = self.root / "list.csv"
        with listing.open("w", newline="") as handle:
            columns = [column for column in ("url", "id", "lat", "lon") if column in rows[0]]
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        await submit_urls(self.engine, UrlCampaign(name, listing), max_attempts=max_attempts)

    def settings(self, **overrides: Any) -> Settings:
        return self.make_settings(self.url, **overrides)

    async def images(self) -> list[Any]:
        async with self.engine.connect() as connection:
            return list((await connection.execute(select(Image).order_by(Image.id))).all())
