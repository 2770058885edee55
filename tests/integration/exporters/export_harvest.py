"""One real harvest (emulator, daemon, JPEG files) that every export test reads."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from defaults import MAX_ATTEMPTS
from pydantic import SecretStr

from harvester.config import Settings, load_settings
from harvester.db.migrate import upgrade
from harvester.db.session import create_engine
from harvester.emulator import EmulatorConfig, RunningEmulator, WorldSize, start_emulator
from harvester.emulator.config import FLICKR_KEY, MAPILLARY_TOKEN
from harvester.emulator.mapillary_world import MapillaryImage
from harvester.records import SubmitReport
from harvester.sources.flickr import FlickrCampaign, submit_flickr
from harvester.sources.mapillary import MapillaryCampaign, submit_mapillary
from harvester.sources.urls import UrlCampaign, submit_urls
from harvester.worker.daemon import run_daemon

PAIRS = 6


@dataclass(frozen=True)
class Harvest:
    database_url: str
    root: Path
    pairs: list[tuple[MapillaryImage, MapillaryImage]]
    url_rows: list[dict[str, str]]

    def argv(self, *args: str) -> list[str]:
        return ["--database-url", self.database_url, "--storage-root", str(self.root), *args]


def _settings(home: Path, emulator: RunningEmulator) -> Settings:
    return load_settings(
        database_url=f"sqlite:///{home / 'harvester.db'}",
        storage_root=home / "data",
        processes=2,
        concurrency=16,
        allow_networks=["127.0.0.1"],
        flickr_api_url=emulator.flickr_api_url,
        mapillary_api_url=emulator.mapillary_api_url,
        flickr_api_key=SecretStr(FLICKR_KEY),
        mapillary_token=SecretStr(MAPILLARY_TOKEN),
    )


def _write_list(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[k for k in rows[0] if k != "expected"])
        writer.writeheader()
        writer.writerows({k: v for k, v in r.items() if k != "expected"} for r in rows)


async def harvest_into(home: Path) -> Harvest:
    emulator = await start_emulator(
        EmulatorConfig(world=WorldSize(flickr_photos=1500, mapillary_dense_images=200))
    )
    try:
        settings = _settings(home, emulator)
        engine = create_engine(settings.database_url)
        await upgrade(engine)
        world = emulator.world
        database, query = world.mapillary_sequence_pairs()[0]
        pairs = list(
            zip(world.mapillary_sequence(database), world.mapillary_sequence(query), strict=True)
        )[:PAIRS]
        pairs_csv = home / "pairs.csv"
        pairs_csv.write_text(
            "".join(
                f"{d.sequence},{q.sequence},{d.id},{q.id},{d.lat},{d.lon},{q.lat},{q.lon}\n"
                for d, q in pairs
            )
        )
        await submit_mapillary(
            engine, MapillaryCampaign("svpr", pairs_csv=pairs_csv), max_attempts=MAX_ATTEMPTS
        )
        rows = [r for r in world.url_list(30, base_url=emulator.base_url, hostile=False)][:12]
        listing = home / "urls.csv"
        _write_list(listing, rows)
        await submit_urls(engine, UrlCampaign("street", listing), max_attempts=MAX_ATTEMPTS)
        campaign = FlickrCampaign(
            "landmarks",
            ("castle", "lighthouse"),
            (),
            min_upload=date(2023, 9, 1),
            max_upload=date(2023, 12, 31),
        )
        await submit_flickr(engine, campaign, max_attempts=MAX_ATTEMPTS)
        await engine.dispose()
        await run_daemon(settings, until_idle=True)
    finally:
        await emulator.close()
    return Harvest(settings.database_url, home / "data", pairs, rows)


CC_BY = "https://creativecommons.org/licenses/by/4.0/"
CC_BY_SA = "https://creativecommons.org/licenses/by-sa/4.0/"
BY_NC = "https://creativecommons.org/licenses/by-nc/4.0/"  # 47 characters: past varchar(40)
OWN = "Our own terms, see the site"  # no licence harvester reads: kept as given
OWN_TERMS = "https://example.org/licences/our-own-terms-for-these-photos"
# A URL list's `license` cells as people write them, one a row.
WRITTEN = (
    "CC-BY-4.0", "CC BY 4.0", "cc-by-4.0",
    "cc-by-sa-4.0", "CC-BY-SA-4.0", "https://creativecommons.org/licenses/by-sa/4.0/deed.en",
    BY_NC, "http://creativecommons.org/publicdomain/zero/1.0",
    "all-rights-reserved", "All Rights Reserved", OWN, "",
    OWN_TERMS,
)  # fmt: skip
# Titles a spreadsheet would run as formulas, on the first rows.
FORMULAS = ('=HYPERLINK("http://evil.test/","click")', "+cmd|' /C calc'!A0", "@SUM(A1)", "-2+3")


def _as_written(i: int, row: dict[str, str]) -> dict[str, str]:
    row = {**row, "license": WRITTEN[i]}
    if i < len(FORMULAS):
        row.update(title=FORMULAS[i], owner=f"={FORMULAS[i]}", lat="-33.8", lon="-70.6")
    return row


async def written_harvest_into(home: Path) -> tuple[Harvest, SubmitReport]:
    """A URL-list campaign `list` as people write one: each licence spelt its own way, titles
    and owners a spreadsheet would run; every row an image the emulator serves."""
    emulator = await start_emulator(
        EmulatorConfig(world=WorldSize(flickr_photos=10, mapillary_dense_images=10))
    )
    try:
        settings = _settings(home, emulator)
        rows = emulator.world.url_list(len(WRITTEN), base_url=emulator.base_url, hostile=False)
        rows = [_as_written(i, row) for i, row in enumerate(rows)]
        listing = home / "list.csv"
        _write_list(listing, rows)
        engine = create_engine(settings.database_url)
        await upgrade(engine)
        report = await submit_urls(engine, UrlCampaign("list", listing), max_attempts=MAX_ATTEMPTS)
        await engine.dispose()
        await run_daemon(settings, until_idle=True)
    finally:
        await emulator.close()
    return Harvest(settings.database_url, home / "data", [], rows), report


def rows_of(path: Path) -> list[dict[str, Any]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def tree_of(root: Path) -> dict[str, bytes]:
    """Every file by its path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def folders_of(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_dir())


def files_by_id(out: Path) -> dict[str, str]:
    """Where each image is in an export, by provider id (from its attribution.csv)."""
    return {r["provider_id"]: r["file"] for r in rows_of(out / "attribution.csv")}
