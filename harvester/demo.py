"""`harvester demo`: the whole product on the embedded default, against the built-in emulator."""

from __future__ import annotations

import asyncio
import csv
import shlex
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Collection
from datetime import date
from pathlib import Path
from typing import TextIO

from pydantic import SecretStr

from harvester.config import Settings
from harvester.db.catalog import repoint_unfinished_images
from harvester.db.counts import image_states_by_campaign_name, reason_counts, unfinished
from harvester.db.migrate import upgrade
from harvester.db.models import Image
from harvester.db.session import Engine, create_engine
from harvester.emulator import (
    FLICKR_KEY,
    MAPILLARY_TOKEN,
    EmulatorConfig,
    RunningEmulator,
    start_emulator,
)
from harvester.redact import redact_url
from harvester.sources.flickr import FlickrCampaign, parse_queries, submit_flickr
from harvester.sources.mapillary import MapillaryCampaign, submit_mapillary
from harvester.sources.urls import UrlCampaign, submit_urls
from harvester.worker.daemon import run_daemon
from harvester.worker.progress import Reporter

DEMO_DIR = Path("harvester-demo")
PREFERRED_PORT = 18_765  # stable across runs, so rows queued by an interrupted run stay valid
URL_LIST_SIZE = 60
FLICKR_QUERIES = """# one query per line; lines starting with '-' remove photos mentioning the term
glacier
lighthouse
castle
-paris
"""
PORT_FILE = "emulator.port"

# The last argument is the settings' max_attempts: the demo queues its rows as `submit` does.
Submitter = Callable[[Engine, RunningEmulator, Path, int], Awaitable[str]]


def _prepare_home() -> tuple[Path, int]:
    home = DEMO_DIR.resolve()
    home.mkdir(exist_ok=True)
    port_file = home / PORT_FILE
    return home, int(port_file.read_text()) if port_file.exists() else PREFERRED_PORT


async def _emulator_on(preferred: int) -> RunningEmulator:
    """The emulator on the port the last demo used (the URLs its database holds), or on
    any free one when another process has that port: bound at once, not probed first."""
    try:
        return await start_emulator(EmulatorConfig(), port=preferred)
    except OSError:
        return await start_emulator(EmulatorConfig(), port=0)


async def submit_url_list(
    engine: Engine, emulator: RunningEmulator, home: Path, max_attempts: int
) -> str:
    listing = home / "street-views.csv"
    rows = emulator.world.url_list(URL_LIST_SIZE, base_url=emulator.base_url)
    with listing.open("w", newline="") as handle:
        fields = [k for k in rows[0] if k != "expected"]
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    campaign = UrlCampaign("demo-street-views", listing)
    report = await submit_urls(engine, campaign, max_attempts=max_attempts)
    return (
        f"URL list {listing}: {report.images_added} new images, {report.images_known} already known"
    )


async def submit_flickr_keywords(
    engine: Engine, emulator: RunningEmulator, home: Path, max_attempts: int
) -> str:
    queries_file = home / "flickr-queries.txt"
    queries_file.write_text(FLICKR_QUERIES)
    queries, negatives = parse_queries(FLICKR_QUERIES, source=str(queries_file))
    campaign = FlickrCampaign(
        "demo-landmarks",
        queries,
        negatives,
        min_upload=date(2023, 7, 1),
        max_upload=date(2023, 12, 31),
    )
    report = await submit_flickr(engine, campaign, max_attempts=max_attempts)
    return f"Flickr keywords {', '.join(queries)} (2023-07..12): {report.tasks_added} tasks"


async def submit_mapillary_demo(
    engine: Engine, emulator: RunningEmulator, home: Path, max_attempts: int
) -> str:
    database, query = emulator.world.mapillary_sequence_pairs()[3]
    sequence = await submit_mapillary(
        engine, MapillaryCampaign("demo-sequence", sequences=(database,)), max_attempts=max_attempts
    )
    anchor = emulator.world.mapillary_sequence(query)[0]
    lon, lat = anchor.lon, anchor.lat
    bbox = (lon - 0.002, lat - 0.002, lon + 0.002, lat + 0.002)
    region = await submit_mapillary(
        engine, MapillaryCampaign("demo-region", bbox=bbox), max_attempts=max_attempts
    )
    return (
        f"Mapillary sequence {database}: {sequence.tasks_added} tasks; region "
        f"{','.join(f'{v:.4f}' for v in bbox)}: {region.tasks_added} tasks"
    )


SUBMITTERS: list[Submitter] = [submit_flickr_keywords, submit_mapillary_demo, submit_url_list]


async def run_demo(
    base: Settings,
    out: TextIO | None = None,
    reporter: Reporter | None = None,
    *,
    given: Collection[str] = (),
) -> int:
    """The demo keeps its database and files in its folder, but for those of `database_url`
    and `storage_root` in `given` (set on the command line: base's are kept). HARVESTER_*
    variables and a config file do not move them: a shell set up for a real harvest does not
    take the demo's campaigns into it."""
    out = out or sys.stdout
    home, preferred = await asyncio.to_thread(_prepare_home)
    emulator = await _emulator_on(preferred)
    await asyncio.to_thread((home / PORT_FILE).write_text, emulator.base_url.rsplit(":", 1)[1])
    previous_base = f"http://127.0.0.1:{preferred}"
    own = {"database_url": f"sqlite:///{home / 'harvester.db'}", "storage_root": home / "data"}
    settings = base.model_copy(
        update={
            **{name: value for name, value in own.items() if name not in given},
            "flickr_api_url": emulator.flickr_api_url,
            "mapillary_api_url": emulator.mapillary_api_url,
            "flickr_api_key": SecretStr(FLICKR_KEY),
            "mapillary_token": SecretStr(MAPILLARY_TOKEN),
            # The demo's URL list points at the emulator on loopback.
            "allow_networks": [*base.allow_networks, "127.0.0.1"],
        }
    )
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
        if previous_base != emulator.base_url:
            await repoint_unfinished_images(engine, previous_base, emulator.base_url)
        out.write(f"emulator (Flickr + Mapillary + image CDN) at {emulator.base_url}\n")
        for submit in SUBMITTERS:
            submitted = await submit(engine, emulator, home, settings.max_attempts)
            out.write(f"submitted: {submitted}\n")
        counters = await run_daemon(
            settings, until_idle=True, reporter=reporter, handle_signals=True
        )
        await _summary(engine, settings, out, counters.elapsed_s, home, bool(given))
    finally:
        await engine.dispose()
        await emulator.close()
    return 0


async def _summary(
    engine: Engine, settings: Settings, out: TextIO, elapsed: float, home: Path, moved: bool
) -> None:
    states = await image_states_by_campaign_name(engine)
    url = settings.database_url
    db = shlex.quote(url if url.startswith("sqlite") else redact_url(url))
    root = shlex.quote(str(settings.storage_root))
    sqlite = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else None
    images_left, tasks_left = await unfinished(engine)
    ended = (
        f"demo stopped after {elapsed:.1f} s with {images_left} images and {tasks_left} "
        "tasks left to do (re-run it to finish them)"
        if images_left or tasks_left
        else f"demo finished in {elapsed:.1f} s"
    )
    lines = [
        "",
        ended,
        *(f"  {name:<28} {state:<8} {count}" for name, state, count in states),
        "why images were skipped or failed (reason codes, as `status` shows them):",
        *await why_not_stored(engine),
        f"files: {settings.storage_root}/<provider>/<group>/<shard>/<name>.jpg",
        "inspect:",
        f"  .venv/bin/harvester --database-url {db} status",
        *(
            [f'  sqlite3 {shlex.quote(sqlite)} "SELECT state, count(*) FROM images GROUP BY state"']
            if sqlite
            else []
        ),
        "a VPR dataset of the Mapillary campaigns (images are read from the storage root):",
        f"  .venv/bin/harvester --database-url {db} --storage-root {root} "
        f"export --campaign demo-sequence --campaign demo-region --format vpr "
        f"--out {shlex.quote(str(home / 'vpr'))}",
        f"re-run {'this command' if moved else '`make demo`'} to resume: "
        "nothing already stored is fetched again.",
    ]
    out.write("\n".join(lines) + "\n")


async def why_not_stored(engine: Engine) -> list[str]:
    """`  failed 6: not_an_image 3, too_large 2, ...`: images of every campaign by reason
    code (`images.reason`), failed then skipped, most frequent first."""
    by_state: dict[str, Counter[str]] = {}
    for reasons in (await reason_counts(engine, models=(Image,))).values():
        for state, reason, count in reasons:
            by_state.setdefault(state, Counter())[reason] += count
    return [
        f"  {state} {by_state[state].total()}: "
        + ", ".join(f"{r} {n}" for r, n in sorted(by_state[state].items(), key=_most_first))
        for state in ("failed", "skipped")
        if state in by_state
    ]


def _most_first(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]
