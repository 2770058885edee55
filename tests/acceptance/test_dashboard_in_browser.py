"""The dashboard as an operator sees it in a browser: a running daemon after a harvest with
failures, loaded in headless Chromium on a desktop and on a phone; and `harvester dashboard`
serving the same page without a daemon."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from browser import INJECT, chromium_or_skip, look_at, screenshot
from daemon_harness import CLI, Harness, kill_group
from served import served_url
from sqlalchemy import select

from harvester.db.models import Campaign, Image
from harvester.db.session import create_engine
from harvester.emulator import EmulatorConfig
from harvester.emulator.config import MAPILLARY_TOKEN
from harvester.emulator.server import build_world

ROWS = "[...document.querySelectorAll('section')[0].querySelectorAll('tr')].map(r => r.innerText)"
# Every campaign's figures panel unfolded, as an operator would, then read.
FIGURES = (
    "[...document.querySelectorAll('details.figures')].map(d => { d.open = true; return "
    "{text: d.innerText, dots: d.querySelectorAll('circle').length,"
    " tracks: d.querySelectorAll('polyline').length}; })"
)
SEEN = (
    "({figures: " + FIGURES + ", text: document.body.innerText, rows: " + ROWS + ","
    " overflow: document.documentElement.scrollWidth - window.innerWidth, injected: "
    + INJECT
    + "})"
)
SCREENSHOT = os.environ.get("HARVESTER_DASHBOARD_SCREENSHOT")  # docs/dashboard.png, by hand


async def _get(url: str) -> str:
    def fetch() -> str:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()

    async with asyncio.timeout(60):
        while True:
            try:
                return await asyncio.to_thread(fetch)
            except OSError:
                await asyncio.sleep(0.2)


async def _database_counts(
    url: str,
) -> tuple[Counter[tuple[str, str]], Counter[str], Counter[str]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(Campaign.name, Image.state, Image.reason, Image.finished_by).join(
                        Campaign, Campaign.id == Image.campaign_id
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    states = Counter((name, state) for name, state, *_ in rows)
    return states, Counter(r for _, _, r, _ in rows if r), Counter(by for *_, by in rows if by)


async def test_an_operator_sees_campaigns_counts_and_reasons_in_a_browser(
    sqlite_url: str, tmp_path: Path
):
    chromium_or_skip()
    harness = Harness(sqlite_url, tmp_path / "data")
    await harness.start_emulator()
    try:
        for name, n in (("alpine lakes", 40), ("city streets", 25)):
            await harness.submit(name, n, tmp_path)
        sequence = build_world(EmulatorConfig().seed, EmulatorConfig().world)
        database, _ = sequence.mapillary_sequence_pairs()[0]
        harness.extra_env.update(
            HARVESTER_MAPILLARY_API_URL=harness.base_url + "/mapillary",
            HARVESTER_MAPILLARY_TOKEN=MAPILLARY_TOKEN,
        )
        code, out = await harness.cli(
            "submit", "mapillary", "--campaign", "a sequence", "--sequence", database
        )
        assert code == 0, out
        code, out = await harness.cli("run", "--until-idle", limit_s=180)
        assert code == 0, out
    finally:
        await harness.stop_emulator()
    states, reasons, finishers = await _database_counts(sqlite_url)
    assert reasons, "the harvest should have failed or skipped something"

    daemon = await harness.start_daemon("--http", "127.0.0.1:0")
    assert daemon.stdout is not None
    try:
        base = await served_url(daemon.stdout, [])
        await _get(f"{base}/readyz")
        page = f"{base}/"
        desktop = await look_at(page, SEEN)
        phone = await look_at(page, SEEN, width=390, height=844)
        if SCREENSHOT:
            await screenshot(page, Path(SCREENSHOT), height=2600)
    finally:
        kill_group(daemon, signal.SIGTERM)
        await daemon.wait()

    for name in ("alpine lakes", "city streets"):
        row = next(r for r in desktop["rows"] if r.startswith(name))
        cells = row.split("\t")
        shown = [int(cells[i]) for i in (2, 3, 4)]  # stored, skipped, failed
        assert shown == [states[(name, s)] for s in ("stored", "skipped", "failed")], row
        total = sum(n for (c, _), n in states.items() if c == name)
        assert f"of {total}" in row
    top_reason = reasons.most_common(1)[0][0]
    assert top_reason in desktop["text"]
    assert "Recent failures" in desktop["text"] and "Coverage" in desktop["text"]
    (finisher, finished), *_ = finishers.most_common()  # the daemon that ran the harvest
    assert f"{finisher}\t0\t—\t{finished / 5:.1f}/min" in desktop["text"]
    assert phone["overflow"] <= 0, "the page is wider than a phone"
    assert desktop["injected"] is False, "an injected script ran on the dashboard"
    assert "alpine lakes" in phone["text"]
    _check_figures(desktop["figures"], sqlite_url)


def _check_figures(panels: list[dict[str, Any]], database_url: str) -> None:
    """The report's figures, per campaign, with the database's numbers."""
    with sqlite3.connect(database_url.removeprefix("sqlite:///")) as db:
        counted = db.execute(
            "SELECT c.name, i.state, coalesce(i.reason, i.state), count(*),"
            " count(i.lat) FILTER (WHERE i.state = 'stored') FROM images i"
            " JOIN campaigns c ON c.id = i.campaign_id GROUP BY 1, 2, 3"
        ).fetchall()
    by_name = {p["text"].split(" (figures", 1)[0].strip(): p for p in panels}
    assert set(by_name) == {"alpine lakes", "city streets", "a sequence"}
    for name, panel in by_name.items():
        text = panel["text"]
        for title in ("Coverage", "Captures per month", "Licence mix", "Images per query",
                      "Outcomes by reason", "Stored sizes", "Near-duplicate groups"):  # fmt: skip
            assert title in text, (name, title)
        lines = text.splitlines()
        rows = [r for r in counted if r[0] == name]
        for _, state, reason, n, _ in rows:
            assert any(ln.startswith(reason) and f"{n} {state}" in ln for ln in lines), (
                name, reason, n, state, text,
            )  # fmt: skip
        stored = sum(r[3] for r in rows if r[1] == "stored")
        assert f"figures of all its {stored} stored images" in text
        located = sum(r[4] for r in rows)
        if name == "a sequence":  # a Mapillary sequence is drawn as its track
            assert (panel["tracks"], panel["dots"]) == (1, 0)
            assert "1 sequences as tracks" in text
        else:
            assert (panel["tracks"], panel["dots"]) == (0, located)


async def test_the_dashboard_command_serves_the_page_without_a_daemon(
    sqlite_url: str, tmp_path: Path
):
    harness = Harness(sqlite_url, tmp_path / "data")
    listing = tmp_path / "list.csv"
    listing.write_text("url,id,lat,lon\nhttp://127.0.0.1:9/a.jpg,a,45.1,6.2\n")
    code, out = await harness.cli("submit", "urls", "--campaign", "no daemon here", str(listing))
    assert code == 0, out
    server = await asyncio.create_subprocess_exec(
        *CLI, "dashboard", "--http", "127.0.0.1:0",
        env=harness.env(), start_new_session=True,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert server.stdout is not None
    try:
        said = (await asyncio.wait_for(server.stdout.readline(), 60)).decode()
        served = re.match(r"dashboard on (http://127\.0\.0\.1:[1-9]\d*)/ ", said)
        assert served, said  # the port it was given, not the 0 it was asked for
        page = await _get(f"{served[1]}/")
    finally:
        kill_group(server, signal.SIGTERM)
        assert await server.wait() == 0
    assert "no daemon here" in page and "0 of 1" in page
    assert "No daemon holds a row" in page
