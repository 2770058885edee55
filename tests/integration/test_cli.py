"""The command line as operators use it: clear errors, JSON for scripts, exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from served import served_url

CLI = [sys.executable, "-m", "harvester.cli"]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )


def test_status_json_on_a_fresh_database_is_valid_json(database_url: str):
    done = _run("--database-url", database_url, "status", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"campaigns": []}


def test_submit_cancel_and_retry_failed_round_trip(sqlite_url: str, tmp_path: Path):
    listing = tmp_path / "list.csv"
    listing.write_text(
        "url,id\nhttp://127.0.0.1:9/a.jpg,a\nnot-a-url,b\nhttp://127.0.0.1:9/c.jpg,c\n"
    )
    db = ("--database-url", sqlite_url)
    submitted = _run(*db, "submit", "urls", "--campaign", "c1", str(listing))
    assert submitted.returncode == 0, submitted.stderr
    assert "2 images queued" in submitted.stdout and "list.csv:3: not an http(s) URL" in (
        submitted.stderr
    )
    cancelled = _run(*db, "cancel", "--campaign", "c1")
    assert "cancelled 0 tasks and 2 images" in cancelled.stdout
    resumed = _run(*db, "retry-failed", "--campaign", "c1", "--cancelled")
    assert "queued again 0 tasks, 2 images" in resumed.stdout
    status = json.loads(_run(*db, "status", "--json").stdout)
    assert status["campaigns"][0]["images"] == {"queued": 2}


def test_every_submit_queues_its_rows_with_harvester_max_attempts(sqlite_url: str, tmp_path: Path):
    (tmp_path / "q.txt").write_text("castle\n")
    (tmp_path / "list.csv").write_text("url\nhttp://127.0.0.1:9/a.jpg\n")
    db, env = ("--database-url", sqlite_url), {"HARVESTER_MAX_ATTEMPTS": "9"}
    for args in (
        ("flickr", "--campaign", "f", "--queries", str(tmp_path / "q.txt")),
        ("mapillary", "--campaign", "m", "--sequence", "s1"),
        ("urls", "--campaign", "u", str(tmp_path / "list.csv")),
    ):
        done = _run(*db, "submit", *args, env=env)
        assert done.returncode == 0, done.stderr
    with sqlite3.connect(tmp_path / "harvester.db") as connection:
        tasks = connection.execute("SELECT DISTINCT max_attempts FROM tasks").fetchall()
        images = connection.execute("SELECT DISTINCT max_attempts FROM images").fetchall()
    assert tasks == [(9,)] and images == [(9,)]


def test_operator_mistakes_get_one_clear_line_and_exit_2(sqlite_url: str, tmp_path: Path):
    db = ("--database-url", sqlite_url)
    unknown = _run(*db, "cancel", "--campaign", "nope")
    assert unknown.returncode == 2 and "no campaign named 'nope'" in unknown.stderr
    missing = _run(*db, "submit", "flickr", "--campaign", "f", "--queries", str(tmp_path / "x"))
    assert missing.returncode == 2 and "cannot read queries file" in missing.stderr
    no_url_column = tmp_path / "bad.csv"
    no_url_column.write_text("link\nhttp://x/y.jpg\n")
    bad = _run(*db, "submit", "urls", "--campaign", "u", str(no_url_column))
    assert bad.returncode == 2 and "must name a 'url' column" in bad.stderr
    env = {"HARVESTER_LEASE_SECONDS": "10", "HARVESTER_HEARTBEAT_SECONDS": "10"}
    lease = _run(*db, "status", env=env)
    assert lease.returncode == 2 and "must be shorter than lease_seconds" in lease.stderr
    assert "Traceback" not in unknown.stderr + missing.stderr + bad.stderr + lease.stderr


async def test_daemon_serves_health_and_metrics_and_stops_cleanly_on_sigterm(
    sqlite_url: str, tmp_path: Path
):
    daemon = await asyncio.create_subprocess_exec(
        *CLI, "--database-url", sqlite_url, "--storage-root", str(tmp_path), "run",
        "--http", "127.0.0.1:0", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert daemon.stdout is not None
    seen: list[str] = []
    try:
        base = await served_url(daemon.stdout, seen)
        live = await asyncio.to_thread(_json_of, f"{base}/livez")
        for path in ("/readyz", "/healthz"):
            assert await asyncio.to_thread(_json_of, f"{base}{path}") == {"status": "ok"}, path
        assert live["status"] == "ok" and live["images_stored"] == 0
        assert live["images_in_flight"] == 0
        metrics = await asyncio.to_thread(_text_of, f"{base}/metrics")
        assert "# TYPE harvester_images_total counter" in metrics
        assert "# HELP harvester_api_calls_total" in metrics
    finally:
        with contextlib.suppress(ProcessLookupError):
            daemon.send_signal(signal.SIGTERM)
        rest, _ = await asyncio.wait_for(daemon.communicate(), 60)
    out = "".join(seen) + rest.decode()
    assert daemon.returncode == 0, out
    assert "daemon_stopped" in out


def _text_of(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def _json_of(url: str) -> Any:
    return json.loads(_text_of(url))


def test_global_options_before_the_emulator_command_reach_the_emulator():
    harvester = Path(sys.executable).with_name("harvester")
    done = subprocess.run(
        [str(harvester), "--log-level", "debug", "emulator", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "--latency-ms" in done.stdout
