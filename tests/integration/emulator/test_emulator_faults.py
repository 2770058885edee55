"""Every fault knob is observable by a client, and the stats count what was served."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import zlib
from typing import Any

import aiohttp
import pytest
from emu_helpers import FLICKR_KEY, MLY_TOKEN, Starter, mly_headers

from harvester.emulator import Faults, Outage, RunningEmulator, Warts
from harvester.emulator.clock import EmulatorClock
from harvester.emulator.faults import FLICKR_SORRY, TokenBuckets
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


async def test_overlap_answers_requests_made_together_and_counts_them_in_flight(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    # Held for a minute unless three are in flight at once: made together, they all are.
    emu = await start(faults=Faults(latency_ms=60_000, overlap=3))
    answers = await asyncio.gather(*(_search(session, emu) for _ in range(3)))
    assert [status for status, _, _ in answers] == [200] * 3
    stats = await _stats(session, emu)
    assert stats["max_in_flight"] == 3
    assert stats["endpoints"]["flickr.photos.search"]["max_in_flight"] == 3
    assert (await _search(session, emu))[0] == 200  # once reached, nothing waits any more


async def test_error_rate_gives_5xx_or_flickr_code_105(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    emu = await start(faults=Faults(error_5xx_rate=1.0))
    kinds = set()
    for _ in range(40):
        status, _, body = await _search(session, emu)
        if status in (200, 400):  # stat=fail: 105 as documented, 201 (an HTTP 400) or 0
            fail = json.loads(body)
            assert fail["stat"] == "fail" and (status == 400) == (fail["code"] == 201)
            assert fail["message"] in ("Service currently unavailable", FLICKR_SORRY)
            kinds.add(fail["code"])
        else:
            assert status in (500, 502, 503)
            kinds.add(500)
    assert kinds == {105, 201, 0, 500}
    stats = await _stats(session, emu)
    assert stats["status_5xx"] + stats["flickr_105"] == 40
    documented = await start(
        faults=Faults(error_5xx_rate=1.0), warts=Warts(flickr_down_codes=(105,))
    )
    answers = [await _search(session, documented) for _ in range(12)]
    assert {json.loads(b)["code"] for s, _, b in answers if s == 200} == {105}


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


async def test_stall_rate_sends_less_than_content_length_and_holds_the_connection_open(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    """No FIN: the client's read times out instead of seeing the connection close, and the
    answer stays in flight until the client hangs up."""
    emu = await start(faults=Faults(stall_rate=1.0, scope=frozenset({"cdn"})))
    url = emu.world.url_list(1, base_url=emu.base_url)[0]["url"]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=0.3)) as held:
        with pytest.raises(aiohttp.SocketTimeoutError):
            async with held.get(url) as resp:
                assert resp.content_length and resp.content_length > 1000
                await resp.read()
        assert resp.content.total_bytes < resp.content_length
        assert emu.state.stats.overall.in_flight == 1
    async with asyncio.timeout(10):  # the emulator looks for the hang-up every 50 ms
        while emu.state.stats.overall.in_flight > 0:  # noqa: ASYNC110 - a count, no event
            await asyncio.sleep(0.05)
    stats = await _stats(session, emu)
    assert stats["stalled"] == 1 and stats["truncated"] == 0


async def test_partial_rate_sends_a_206_with_a_true_content_range(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    emu = await start(faults=Faults(partial_rate=1.0))
    url = emu.world.url_list(1, base_url=emu.base_url, hostile=False)[0]["url"]
    async with session.get(url) as resp:
        body = await resp.read()
        assert resp.status == 206
        assert resp.headers["Content-Range"].startswith(f"bytes 0-{len(body) - 1}/")
        assert int(resp.headers["Content-Range"].rsplit("/", 1)[1]) > len(body)
    assert (await _stats(session, emu))["partial"] == 1


async def test_bad_gzip_rate_sends_gzip_cut_short_or_with_a_wrong_crc_of_its_true_length(
    start: Starter,
) -> None:
    emu = await start(faults=Faults(bad_gzip_rate=1.0))
    kinds = set()
    async with aiohttp.ClientSession(auto_decompress=False) as raw:
        for _ in range(12):
            async with raw.get(emu.flickr_api_url, params={**SEARCH, "api_key": FLICKR_KEY}) as r:
                body = await r.read()
                assert r.headers["Content-Encoding"] == "gzip"
                assert r.content_length == len(body)
            stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                stream.decompress(body)
            except zlib.error as exc:
                assert "incorrect data check" in str(exc)
                kinds.add("crc")
            else:
                assert not stream.eof
                kinds.add("cut")
        assert (await _stats(raw, emu))["bad_gzip"] == 12
    assert kinds == {"crc", "cut"}


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
    emu = await start(flickr_rate_per_s=4, flickr_keys=frozenset({FLICKR_KEY, "another-key-42"}))
    statuses = [(await _search(session, emu))[:2] for _ in range(10)]
    assert [s for s, _ in statuses[:4]] == [200] * 4
    refused = [h for s, h in statuses if s == 429]
    assert len(refused) >= 5 and all(int(h["Retry-After"]) >= 1 for h in refused)
    assert (await _search(session, emu, key="another-key-42"))[0] == 200


async def test_mapillary_rate_is_enforced_per_token(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    for warts, refusal in ((Warts(), 400), (Warts(mapillary_limit_in_body=False), 429)):
        emu = await start(mapillary_rate_per_s=2, warts=warts)
        url = f"{emu.mapillary_api_url}/image_ids"
        seq = emu.world.mapillary_sequence_pairs()[0][0]
        answers = []
        for _ in range(5):
            async with session.get(url, params={"sequence_id": seq}, headers=mly_headers()) as r:
                answers.append((r.status, await r.json()))
        assert [s for s, _ in answers[:2]] == [200, 200]
        refused = [body for s, body in answers if s == refusal]
        assert refused, answers
        if refusal == 400:  # Graph style: the meaning is the code in the body
            assert all(body["error"]["code"] == 613 for body in refused)


async def test_body_rate_limits_carry_graph_codes_with_4xx_statuses(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    emu = await start(faults=Faults(body_rate_limit_rate=1.0))
    seen = await _graph_errors(session, emu)
    assert {s for s, _, _ in seen} == {400, 403} and {c for _, c, _ in seen} == {4, 17, 613}
    assert not any(transient for _, _, transient in seen)
    assert (await _search(session, emu))[0] == 200  # Flickr is not Graph-style
    other = Faults(
        body_rate_limit_rate=1.0, body_rate_limit_codes=(341, 80004), body_rate_limit_transient=True
    )
    seen = await _graph_errors(session, await start(faults=other))
    assert {c for _, c, _ in seen} == {341, 80004} and all(t for _, _, t in seen)


async def _graph_errors(
    session: aiohttp.ClientSession, emu: RunningEmulator
) -> set[tuple[int, int, bool]]:
    """(status, code, is_transient) of 30 refused calls."""
    url = f"{emu.mapillary_api_url}/image_ids"
    seq = emu.world.mapillary_sequence_pairs()[0][0]
    seen = set()
    for _ in range(30):
        async with session.get(url, params={"sequence_id": seq}, headers=mly_headers()) as r:
            error = (await r.json())["error"]
        seen.add((r.status, error["code"], error.get("is_transient", False)))
    return seen


async def test_flickr_429s_are_html_pages_unless_told_otherwise(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    strict = await start(faults=Faults(rate_429=1.0))
    status, headers, body = await _search(session, strict)
    assert status == 429 and headers["Content-Type"].startswith("text/html")
    assert body.lstrip().startswith(b"<!DOCTYPE html>")
    lenient = await start(faults=Faults(rate_429=1.0), warts=Warts(flickr_429_html=False))
    status, headers, body = await _search(session, lenient)
    assert status == 429 and json.loads(body)["error"] == "rate limit exceeded"


async def test_an_outage_starts_after_the_first_call_and_ends_on_the_emulator_clock(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    emu = await start(warts=Warts(outages=(Outage("flickr", 60, 180),)))
    assert (await _search(session, emu))[0] == 200  # the first call starts the schedule
    emu.state.clock.advance(61)
    answers = [await _search(session, emu) for _ in range(24)]
    kinds = {json.loads(b)["code"] if b.startswith(b"{") else s for s, _, b in answers}
    assert kinds == {105, 201, 0, 503}
    url = emu.world.url_list(1, base_url=emu.base_url, hostile=False)[0]["url"]
    async with session.get(url) as resp:
        assert resp.status == 200  # only the Flickr API is down
    emu.state.clock.advance(180)
    assert (await _search(session, emu))[0] == 200
    assert (await _stats(session, emu))["outage"] == 24


def test_a_faster_clock_runs_outages_in_less_wall_time() -> None:
    wall = [1000.0]
    clock = EmulatorClock(lambda: wall[0], speed=10)
    wall[0] += 18
    assert clock.now() == pytest.approx(1180.0)


async def test_a_bad_key_is_refused_even_when_no_key_is_configured_and_counted(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    assert (await _search(session, emulator, key="some-other-key-123"))[0] == 200
    body = json.loads((await _search(session, emulator, key="some-other-key-123"))[2])
    assert body["stat"] == "fail" and body["code"] == 100
    async with session.get(
        f"{emulator.mapillary_api_url}/image_ids", params={"sequence_id": "x"},
        headers=mly_headers("MLY|someone-else"),
    ) as resp:  # fmt: skip
        assert resp.status == 401 and (await resp.json())["error"]["code"] == 190
    assert (await _search(session, emulator))[0] == 200  # the built-in key is valid
    assert (await _stats(session, emulator))["invalid_key"] == 3


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
