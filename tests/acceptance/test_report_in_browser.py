"""`harvester report` as a person sees it: report.html opened from disk, offline, in
headless Chromium; the README's screenshot is made the same way (by hand:
HARVESTER_REPORT_SCREENSHOT=docs/report.png)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from browser import INJECT, look_at, screenshot

sys.path.insert(0, str(Path(__file__).parents[1] / "integration" / "exporters"))
from export_harvest import harvest_into

from harvester.cli import main

SEEN = (
    "({text: document.body.innerText,"
    " images: [...document.images].map(i => ({alt: i.alt, w: i.naturalWidth})),"
    " remote: [...document.querySelectorAll('[src]')]"
    "   .filter(e => !e.getAttribute('src').startsWith('data:')).length,"
    " overflow: document.documentElement.scrollWidth - window.innerWidth, injected: "
    + INJECT
    + "})"
)
SCREENSHOT = os.environ.get("HARVESTER_REPORT_SCREENSHOT")


@pytest.fixture(autouse=True)
def _logging_left_as_found() -> Iterator[None]:
    """`main()` runs in process here and points logs at the captured stream; undo it."""
    yield
    structlog.reset_defaults()


def test_the_report_opens_offline_and_shows_every_figure(tmp_path: Path):
    harvest = asyncio.run(harvest_into(tmp_path / "harvest"))
    out = tmp_path / "report"
    assert main(harvest.argv("report", "--campaign", "svpr", "--out", str(out))) == 0
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == sorted(
        ["coverage.png", "captures.png", "licences.png", "queries.png", "outcomes.png",
         "sizes.png", "near-duplicates.png"]
    )  # fmt: skip
    page = out / "report.html"
    seen = asyncio.run(look_at(page.as_uri(), SEEN))
    text = seen["text"]
    assert "Campaign svpr" in text and "stored images\t12" in text
    assert "near-duplicate groups" in text and "sequences\t2" in text
    assert len(seen["images"]) == 7 and all(i["w"] > 0 for i in seen["images"])
    assert seen["remote"] == 0, "every figure is inside the page"
    assert seen["overflow"] <= 0
    assert seen["injected"] is False, "an injected script ran on the report"
    phone = asyncio.run(look_at(page.as_uri(), SEEN, width=390, height=844))
    assert phone["overflow"] <= 0 and all(i["w"] > 0 for i in phone["images"])
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(harvest.argv("report", "--campaign", "svpr", "--out", str(out))) == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before, "same data, same files"
    if SCREENSHOT:
        asyncio.run(screenshot(page.as_uri(), Path(SCREENSHOT).resolve(), height=2400))
