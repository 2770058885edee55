"""The real services' warts, each switched on in the emulator, met through the real CLI."""

from __future__ import annotations

import calendar
import csv
import hashlib
import json
import math
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from daemon_harness import Harness
from sqlalchemy import select

from harvester.db.models import ImageHit, Task
from harvester.db.session import create_engine
from harvester.emulator import FLICKR_KEY, MAPILLARY_TOKEN, Deletions, World
from harvester.emulator.deleted import placeholder_png
from harvester.emulator.stats import key_label
from harvester.imaging.frame import MARGIN_FRACTION
from harvester.sources.mapillary_tiles import PER_SIDE_TILE

SEED = 7


@pytest.fixture(scope="module")
def world() -> World:
    return World(SEED)


async def _start(h: Harness, *flags: str, **env: str) -> None:
    await h.start_emulator(*flags)
    h.extra_env = {
        "HARVESTER_FLICKR_API_URL": f"{h.base_url}/services/rest/",
        "HARVESTER_MAPILLARY_API_URL": f"{h.base_url}/mapillary",
        "HARVESTER_FLICKR_API_KEY": FLICKR_KEY,
        "HARVESTER_MAPILLARY_TOKEN": MAPILLARY_TOKEN,
        "HARVESTER_OUTAGE_PROBE_SECONDS": "1",
        **env,
    }


def _stats(h: Harness) -> dict[str, Any]:
    with urllib.request.urlopen(f"{h.base_url}/_emulator/stats") as resp:
        body: dict[str, Any] = json.load(resp)
    return body


async def _task_results(h: Harness, kind: str) -> list[dict[str, Any]]:
    engine = create_engine(h.database_url)
    try:
        async with engine.connect() as connection:
            found = await connection.execute(
                select(Task.state, Task.result).where(Task.kind == kind)
            )
            rows = found.all()
    finally:
        await engine.dispose()
    assert all(state == "done" for state, _ in rows), rows
    return [result or {} for _, result in rows]


def _on_disk(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*.jpg")}


async def test_a_pano_region_under_the_per_side_bbox_rule_stores_every_pano(
    harness: Harness, world: World
) -> None:
    await _start(harness, "--bbox-rule", "per_side")
    paris = world.mapillary_sequence(world.mapillary_sequence_pairs()[1][0])
    assert paris[0].is_pano
    lon = sum(im.lon for im in paris) / len(paris)
    lat = sum(im.lat for im in paris) / len(paris)
    region = (lon - 0.008, lat - 0.008, lon + 0.008, lat + 0.008)  # sides over 0.01 degree
    truth = {im.id for im in world.mapillary_images_in_bbox(region, is_pano=True)}
    assert len(truth) > 150
    bbox = ",".join(f"{v:.6f}" for v in region)
    code, out = await harness.cli(
        "submit", "mapillary", "--campaign", "panos", "--bbox", bbox, "--pano-only"
    )
    assert code == 0, out
    code, out = await harness.cli("run", "--until-idle", limit_s=300)
    assert code == 0, out
    rows = await harness.rows()
    assert {r.provider_id for r in rows} == truth
    assert all(r.state == "stored" for r in rows), [(r.provider_id, r.state) for r in rows]
    assert _on_disk(harness.root) == {r.path for r in rows}
    # How it was tiled: the first (area-sized) tile was refused and re-cut per side.
    results = await _task_results(harness, "mapillary_tile")
    assert any(r.get("why") == "refused" for r in results)
    searched = [r for r in results if "returned" in r]
    assert searched and all(r["side"] == PER_SIDE_TILE for r in searched)
    code, out = await harness.cli("campaigns", "show", "panos", "--json")
    assert code == 0, out
    tiling = json.loads(out)["tiling"]  # the campaign says how its region was tiled
    assert tiling["cut"]["refused"] >= 1 and tiling["sides"] == [PER_SIDE_TILE]
    assert tiling["tiles_searched"] == len(searched)


async def test_deleted_photos_and_a_three_minute_outage_lose_nothing(
    harness: Harness, world: World, tmp_path: Path
) -> None:
    # A 3-minute outage of the Flickr API, 5 s after its first call, on a clock running 10x.
    # No GIF or hidden originals, so each photo's size follows from has_large (the Medium
    # fallbacks are tested in tests/integration/sources/test_flickr_sizes.py).
    await _start(
        harness,
        "--deleted-share", "0.05", "--outage", "flickr:5:180", "--clock-speed", "10",
        "--gif-share", "0", "--hidden-original-share", "0",
        HARVESTER_FLICKR_RATE_PER_HOUR=str(2 * 3600), HARVESTER_FLICKR_BURST="1",
    )  # fmt: skip
    queries = ("lighthouse", "waterfall")
    (tmp_path / "queries.txt").write_text("\n".join(queries) + "\n")
    code, out = await harness.cli(
        "submit", "flickr", "--campaign", "coasts", "--queries", str(tmp_path / "queries.txt"),
        "--min-upload-date", "2023-01-01", "--max-upload-date", "2023-12-31",
    )  # fmt: skip
    assert code == 0, out
    code, out = await harness.cli("run", "--until-idle", limit_s=400)
    assert code == 0, out
    assert "breaker_open" in out and "breaker_closed" in out  # the outage was met, and waited out

    start, end = calendar.timegm((2023, 1, 1, 0, 0, 0)), calendar.timegm((2024, 1, 1, 0, 0, 0))
    truth = {
        p.id: p
        for q in queries
        for p in world.flickr_search_truth(text=q, accuracy=6, min_upload=start, max_upload=end - 1)
    }
    deleted = Deletions(SEED, 0.05)
    rows = await harness.rows()
    assert sorted(r.provider_id for r in rows) == sorted(truth)  # each once, every window read
    gone = 0
    for row in rows:
        photo = truth[row.provider_id]
        short = min(photo.o_width, photo.o_height)
        small = not photo.has_large and short < 500
        # What its frame leaves, the frame cut with its margin (a pixel or two either way).
        band = sum(width for width, _ in photo.frames) + math.ceil(MARGIN_FRACTION * short)
        inner = short - 2 * band if photo.frames and not photo.has_large else None
        if small:  # known too small from o_dims: skipped before any download
            assert (row.state, row.reason) == ("skipped", "too_small"), row.provider_id
        elif inner is not None and abs(inner - 500) <= 6 and not deleted.flickr(photo.id):
            assert row.state == "stored" or row.reason == "too_small", row.provider_id
        elif inner is not None and inner < 500 and not deleted.flickr(photo.id):
            assert (row.state, row.reason) == ("skipped", "too_small"), row.provider_id
        elif deleted.flickr(photo.id):
            gone += 1
            assert (row.state, row.reason) == ("skipped", "unavailable"), row.provider_id
        else:
            assert row.state == "stored", (row.provider_id, row.state, row.reason)
    assert gone >= 5
    stored = {r.path for r in rows if r.state == "stored"}
    assert _on_disk(harness.root) == stored  # no placeholder, nothing else
    assert hashlib.sha256(placeholder_png()).hexdigest() not in {r.source_sha256 for r in rows}
    assert len({r.source_sha256 for r in rows if r.state == "stored"}) == len(stored)
    engine = create_engine(harness.database_url)
    try:
        async with engine.connect() as connection:
            hits = {q for (q,) in await connection.execute(select(ImageHit.query))}
    finally:
        await engine.dispose()
    assert hits == set(queries)
    assert _stats(harness)["outage"] > 0


async def test_a_sequence_csv_with_one_deleted_id_stores_the_rest(
    harness: Harness, world: World, tmp_path: Path
) -> None:
    sequence = world.mapillary_sequence(world.mapillary_sequence_pairs()[3][0])
    assert not sequence[0].is_pano and len(sequence) > 100
    deleted = sequence[60]
    await _start(harness, "--mapillary-deleted", deleted.id)
    listing = tmp_path / "sequence.csv"
    with listing.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sequence_id", "image_id", "latitude", "longitude"])
        writer.writerows([im.sequence, im.id, im.lat, im.lon] for im in sequence)
    code, out = await harness.cli(
        "submit", "mapillary", "--campaign", "csv", "--sequence-csv", str(listing)
    )
    assert code == 0, out
    code, out = await harness.cli("run", "--until-idle", limit_s=300)
    assert code == 0, out
    rows = {r.provider_id: r for r in await harness.rows()}
    assert set(rows) == {im.id for im in sequence}
    assert (rows[deleted.id].state, rows[deleted.id].reason) == ("skipped", "unavailable")
    others = [r for pid, r in rows.items() if pid != deleted.id]
    assert all(r.state == "stored" for r in others), [(r.provider_id, r.state) for r in others]
    assert _on_disk(harness.root) == {r.path for r in others}


async def test_an_invalid_key_is_sent_once_not_once_per_query(
    harness: Harness, world: World, tmp_path: Path
) -> None:
    wrong_key, wrong_token = "not-our-flickr-key-0123456789", "MLY|1|not-our-token-0123456789"
    await _start(harness)
    harness.extra_env.update(
        HARVESTER_FLICKR_API_KEY=wrong_key, HARVESTER_MAPILLARY_TOKEN=wrong_token
    )
    (tmp_path / "queries.txt").write_text("castle\nbridge\nmarket\nforest\n")
    code, out = await harness.cli(
        "submit", "flickr", "--campaign", "keys", "--queries", str(tmp_path / "queries.txt"),
        "--min-upload-date", "2023-01-01", "--max-upload-date", "2023-12-31",
    )  # fmt: skip
    assert code == 0, out
    sequences = [a for a, _ in world.mapillary_sequence_pairs()[:3]]
    flags = [arg for s in sequences for arg in ("--sequence", s)]
    code, out = await harness.cli("submit", "mapillary", "--campaign", "tokens", *flags)
    assert code == 0, out
    code, out = await harness.cli("run", "--until-idle", limit_s=120)
    assert code in (0, 3), out  # 3: the campaigns were paused for their keys
    keys = _stats(harness)["keys"]
    assert keys[key_label(wrong_key)]["total"] == 1
    assert keys[key_label(wrong_key)]["invalid_key"] == 1
    assert keys[key_label(wrong_token)]["total"] == 1
    assert keys[key_label(wrong_token)]["invalid_key"] == 1
    assert wrong_key not in out and wrong_token not in out
