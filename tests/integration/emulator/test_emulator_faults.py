"""Every fault knob is observable by a client, and the stats count what was served."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import aiohttp
import pytest
from emu_helpers import FLICKR_KEY, MLY_TOKEN, Starter, mly_headers

from harvester.emulator import Faults, RunningEmulator
from harvester.emulator.faults import TokenBuckets
from harvester.emulator.stats import Stats

SEARCH = {"method": "flickr.photos.search", "text": "castle", "format": "json",
          "nojsoncallback": "1"}  # fmt: skip


async def _search(
    session: aiohttp.ClientSession, emu: RunningEmulator, key: str = FLICKR_KEY
) -> tuple[int, dict[str, str], bytes]:
    async with session.get(emu.flickr_api_url, params={**SEARCH, "api_key": key}) as resp:
        return resp.status, dict(resp.headers), await resp.read()


async def _stats(session: aiohttp.ClientSession, emu: RunningEmulator) -> dict[str, Any]:
    async with session.get(f"{emu.base_url}/_emulator/stats") as resp:
        body: dict[str, Any] = await resp.json()
        return body


async def test_latency_delays_every_api_answer(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    emu = await start(faults=Faults(latency_ms=120))
    began = time.monotonic()
    for _ in range(3):
        assert (await _search(session, emu))[0] == 200
    assert time.monotonic() - began >= 0.36


async def test_error_rate_gives_5xx_or_flickr_code_105(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    emu = await start(faults=Faults(error_5xx_rate=1.0))
    kinds = set()
    for _ in range(12):
        status, _, body = await _search(session, emu)
        if status == 200:
            assert json.loads(body) == {
                "stat": "fail", "code": 105, "message": "Service currently unavailable"
            }  # fmt: skip
            kinds.add(105)
        else:
            assert status in (500, 502, 503)
            kinds.add(500)
    assert kinds == {105, 500}
    stats = await _stats(session, emu)
    assert stats["status_5xx"] + stats["flickr_105"] == 12


async def test_429_rate_answers_with_retry_after(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    emu = await start(faults=Faults(rate_429=1.0, retry_after_s=7))
    status, headers, _ = await _search(session, emu)
    assert status == 429 and headers["Retry-After"] == "7"


async def test_reset_rate_drops_the_connection(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    emu = await start(faults=Faults(reset_rate=1.0))
    with pytest.raises(aiohttp.ClientConnectionError):
        await _search(session, emu)
    # aiohttp itself retries a GET once on a dropped connection, so 1 or 2 resets.
    assert (await _stats(session, emu))["resets"] >= 1


async def test_truncate_rate_sends_less_than_content_length(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    emu = await start(faults=Faults(truncate_rate=1.0))
    url = emu.world.url_list(1, base_url=emu.base_url)[0]["url"]
    with pytest.raises(aiohttp.ClientPayloadError):
        async with session.get(url) as resp:
            assert resp.content_length and resp.content_length > 1000
            await resp.read()
    assert (await _stats(session, emu))["truncated"] == 1


async def test_fault_scope_limits_faults_to_the_cdn(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    emu = await start(faults=Faults(error_5xx_rate=1.0, scope=frozenset({"cdn"})))
    assert (await _search(session, emu))[0] == 200
    url = emu.world.url_list(1, base_url=emu.base_url)[0]["url"]
    async with session.get(url) as resp:
        assert resp.status >= 500


async def test_faults_are_the_same_for_the_same_seed(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    runs = []
    for _ in range(2):
        emu = await start(seed=11, faults=Faults(error_5xx_rate=0.3, rate_429=0.2))
        runs.append([(await _search(session, emu))[0] for _ in range(20)])
    assert runs[0] == runs[1] and len(set(runs[0])) > 1


async def test_flickr_rate_is_enforced_per_key_with_retry_after(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    emu = await start(flickr_rate_per_s=4)
    statuses = [(await _search(session, emu))[:2] for _ in range(10)]
    assert [s for s, _ in statuses[:4]] == [200] * 4
    refused = [h for s, h in statuses if s == 429]
    assert len(refused) >= 5 and all(int(h["Retry-After"]) >= 1 for h in refused)
    assert (await _search(session, emu, key="another-key-42"))[0] == 200


async def test_mapillary_rate_is_enforced_per_token(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    emu = await start(mapillary_rate_per_s=2)
    url = f"{emu.mapillary_api_url}/image_ids"
    seq = emu.world.mapillary_sequence_pairs()[0][0]
    statuses = []
    for _ in range(5):
        async with session.get(url, params={"sequence_id": seq}, headers=mly_headers()) as r:
            statuses.append(r.status)
    assert statuses[:2] == [200, 200] and 429 in statuses


async def test_stats_count_per_key_and_endpoint_without_revealing_keys(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    for _ in range(3):
        await _search(session, emulator)
    await _search(session, emulator, key="second-key-123456")
    seq = emulator.world.mapillary_sequence_pairs()[0][0]
    async with session.get(
        f"{emulator.mapillary_api_url}/image_ids", params={"sequence_id": seq},
        headers=mly_headers(),
    ) as resp:  # fmt: skip
        assert resp.status == 200
    stats = await _stats(session, emulator)
    text = json.dumps(stats)
    assert FLICKR_KEY not in text and MLY_TOKEN not in text and "second-key-123456" not in text
    assert stats["total"] == 5
    assert stats["endpoints"]["flickr.photos.search"]["total"] == 4
    assert stats["endpoints"]["mapillary.image_ids"]["total"] == 1
    per_key = sorted(k["endpoints"].get("flickr.photos.search", {}).get("total", 0)
                     for k in stats["keys"].values())  # fmt: skip
    assert per_key == [0, 1, 3]
    assert sum(sum(k["per_second"].values()) for k in stats["keys"].values()) == 5
    async with session.post(f"{emulator.base_url}/_emulator/stats/reset") as resp:
        assert resp.status == 200
    assert (await _stats(session, emulator))["total"] == 0


def test_max_1s_is_the_busiest_sliding_second() -> None:
    now = [100.0]
    stats = Stats(clock=lambda: now[0])
    for at in (100.0, 100.5, 100.9, 101.2, 101.4, 101.45, 102.6):
        now[0] = at
        stats.hit("k", "e")
    snap = stats.snapshot()["keys"]["k"]
    assert snap["max_1s"] == 5  # 100.5 .. 101.45
    assert snap["per_second"] == {"100": 3, "101": 3, "102": 1}


def test_token_buckets_refill_at_the_configured_rate() -> None:
    now = [0.0]
    buckets = TokenBuckets(2.0, clock=lambda: now[0])
    assert buckets.take("a") is None and buckets.take("a") is None
    wait = buckets.take("a")
    assert wait == pytest.approx(0.5)
    now[0] = 0.5
    assert buckets.take("a") is None


def test_command_prints_base_url_and_stops_on_sigterm() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        [sys.executable, "-m", "harvester.emulator", "--port", "0", "--seed", "3"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            assert line.startswith("http://127.0.0.1:")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()


async def test_fault_knobs_can_be_changed_while_running(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    knobs = f"{emulator.base_url}/_emulator/faults"
    async with session.post(knobs, params={"rate_429": "1", "retry_after_s": "0"}) as resp:
        assert resp.status == 200 and (await resp.json())["rate_429"] == 1.0
    status, headers, _ = await _search(session, emulator)
    assert status == 429 and headers["Retry-After"] == "0"
    async with session.post(knobs, params={"rate_429": "0"}) as resp:
        assert resp.status == 200
    assert (await _search(session, emulator))[0] == 200
    async with session.post(knobs, params={"api_key": "x"}) as resp:
        assert resp.status == 400
