"""`make chaos`: the daemon against the emulator with every fault knob on, killed at random.

A URL list (hostile rows included) and a Flickr keyword campaign are harvested from an
emulator answering with latency, 5xx, 429 + Retry-After, connection resets, truncated and
stalled bodies, unasked-for 206 partial bodies, broken gzip streams, HTML pages in the API's
place, expiring signed URLs, deleted photos and a CDN outage. The real `harvester run` is
SIGKILLed at random moments of its work (at least five times, each once that run has stored
a random number of images, so a slow machine's start-up cannot take the kills) and sent
SIGTERM once, then run to the end. The invariants are then checked on the database and the
storage root:

- every listed image ended as the emulator says a correct harvest ends it (`expected`:
  stored, skipped or failed), and every row ended stored, or skipped/failed with a reason;
- nothing lost to the faults or the kills: no row failed for good on a transient error
  (`lease_lost` among them), and every query task ended done (a failed window would leave
  the photos it should have found without a row, unchecked);
- no file twice (no two rows share a path, no source bytes stored twice);
- no temp file left; every stored row's file is present with its sha256; no orphan file.

The rows in flight at each signal are reported: a kill that found none proved nothing.

`python -m bench.chaos --images N --kills K` (the suite runs a short version).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import io
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLI = [sys.executable, "-m", "harvester.cli"]
TEMP_MARK = ".tmp-"  # harvester.storage.local.TEMP_MARK
FAULTS = [
    "--latency-ms=15",
    "--error-rate=0.05",
    "--rate-429=0.03",
    "--retry-after=1",
    "--reset-rate=0.02",
    "--truncate-rate=0.02",
    "--stall-rate=0.02",
    "--partial-rate=0.02",
    "--bad-gzip-rate=0.02",
    "--html-page-rate=0.02",
    "--url-ttl=20",
    "--deleted-share=0.05",
    "--outage=cdn:8:3",
]
FLICKR_KEY = "0e1b2a3c4d5e6f708192a3b4c5d6e7f8"  # the emulator's default key
ENDED = ("stored", "skipped", "failed")
RUN_LIMIT_S = 120.0  # a run to be interrupted is, after this long, whatever it has stored


@dataclass
class Report:
    images: int = 0
    kills: int = 0
    terms: int = 0
    runs: int = 0
    in_flight: list[int] = field(default_factory=list)  # rows leased when each signal was sent
    states: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        held = "all invariants held" if not self.problems else f"{len(self.problems)} problems"
        return [
            f"chaos: {self.images} images, {self.runs} daemon runs, {self.kills} SIGKILL, "
            f"{self.terms} SIGTERM, {self.seconds:.0f} s: {held}",
            f"  rows in flight at each signal: {self.in_flight}",
            f"  final states: {self.states}",
            *(f"  PROBLEM: {p}" for p in self.problems[:20]),
        ]


def _env(home: Path, base_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "HARVESTER_DATABASE_URL": f"sqlite:///{home / 'chaos.db'}",
        "HARVESTER_STORAGE_ROOT": str(home / "data"),
        "HARVESTER_ALLOW_NETWORKS": "127.0.0.1",
        "HARVESTER_FLICKR_API_URL": f"{base_url}/services/rest/",
        "HARVESTER_FLICKR_API_KEY": FLICKR_KEY,
        "HARVESTER_MAX_ATTEMPTS": "8",
        "HARVESTER_BACKOFF_BASE_SECONDS": "0.05",
        "HARVESTER_BACKOFF_MAX_SECONDS": "0.5",
        "HARVESTER_MAX_RETRY_AFTER_SECONDS": "2",
        "HARVESTER_LEASE_SECONDS": "6",
        "HARVESTER_HEARTBEAT_SECONDS": "2",
        "HARVESTER_PROCESSES": "2",
        "HARVESTER_LOG_INTERVAL_SECONDS": "5",
    }


def _start_emulator() -> tuple[subprocess.Popen[bytes], str]:
    emulator = subprocess.Popen([*CLI, "emulator", "--port", "0", *FAULTS], stdout=subprocess.PIPE)
    assert emulator.stdout is not None
    base_url = emulator.stdout.readline().decode().strip()
    if not base_url.startswith("http://"):
        emulator.kill()
        raise RuntimeError(f"the emulator did not start: {base_url!r}")
    return emulator, base_url


def _submit(home: Path, base_url: str, images: int, env: dict[str, str]) -> list[dict[str, str]]:
    with urllib.request.urlopen(f"{base_url}/_emulator/urls.csv?n={images}&expected=1") as r:
        listing = list(csv.DictReader(io.StringIO(r.read().decode())))
    path = home / "urls.csv"
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=[k for k in listing[0] if k != "expected"],
                                extrasaction="ignore")  # fmt: skip
        writer.writeheader()
        writer.writerows(listing)
    queries = home / "queries.txt"
    queries.write_text("glacier\nlighthouse\n")
    for args in (
        ["submit", "urls", "--campaign", "chaos-urls", str(path)],
        ["submit", "flickr", "--campaign", "chaos-flickr", "--queries", str(queries),
         "--min-upload-date", "2015-01-01", "--max-upload-date", "2016-12-31"],
    ):  # fmt: skip
        subprocess.run([*CLI, "--log-level=warning", *args], env=env, check=True,
                       capture_output=True)  # fmt: skip
    return listing


@dataclass(frozen=True)
class Run:
    code: int | None  # its exit code; None when it was sent the signal
    in_flight: int = 0  # rows it held (leased) when the signal was sent


def _run(env: dict[str, str], home: Path, sig: int, *, stored: int | None, limit_s: float) -> Run:
    """One daemon run, sent `sig` once `stored` more images are stored (None: never) or
    `limit_s` has passed, unless it ends first. Counted in images, not seconds, a kill lands
    amid the work however slowly the machine starts a daemon or runs it."""
    with contextlib.closing(sqlite3.connect(home / "chaos.db", timeout=30)) as db:
        target = None if stored is None else _count(db, "images", "stored") + stored
        with (home / "daemon.log").open("ab") as out:
            daemon = subprocess.Popen([*CLI, "run", "--until-idle", "--grace=5"], env=env,
                                      stdout=out, stderr=out)  # fmt: skip
        give_up = time.monotonic() + limit_s
        while daemon.poll() is None:
            if time.monotonic() >= give_up or (
                target is not None and _count(db, "images", "stored") >= target
            ):
                in_flight = _count(db, "images", "running") + _count(db, "tasks", "running")
                daemon.send_signal(sig)
                daemon.wait(timeout=60)
                return Run(None, in_flight)
            time.sleep(0.05)
        return Run(daemon.returncode)


def _count(db: sqlite3.Connection, table: str, state: str) -> int:
    """Rows of `table` in `state` (a read: it never waits for the daemon's writes)."""
    (count,) = db.execute(f"SELECT count(*) FROM {table} WHERE state = ?", (state,)).fetchone()
    return int(count)


def harvest(home: Path, images: int, kills: int, seed: int, final_timeout: float) -> Report:
    rng = random.Random(seed)
    report = Report()
    started = time.monotonic()
    emulator, base_url = _start_emulator()
    try:
        env = _env(home, base_url)
        listing = _submit(home, base_url, images, env)
        term_at = rng.randrange(kills)
        # Each interrupted run stores 1 to `most` images: together never all of them.
        most = max(2, images // (kills + 2))
        runs: list[Run] = []
        for n in range(kills + 1):
            sig = signal.SIGTERM if n == term_at else signal.SIGKILL
            runs.append(_run(env, home, sig, stored=rng.randint(1, most), limit_s=RUN_LIMIT_S))
            if runs[-1].code is not None:
                break  # finished before the signal: nothing left to interrupt
            report.in_flight.append(runs[-1].in_flight)
            if sig == signal.SIGKILL:
                report.kills += 1
            else:
                report.terms += 1
        deadline = time.monotonic() + final_timeout
        while time.monotonic() < deadline:
            left = max(1.0, deadline - time.monotonic())
            runs.append(_run(env, home, signal.SIGTERM, stored=None, limit_s=left))
            if runs[-1].code is not None:
                break
        report.runs = len(runs)
        report.problems += [
            f"run {n} exited with code {run.code} (daemon.log)"
            for n, run in enumerate(runs, 1)
            if run.code not in (None, 0)
        ]
        check(home, listing, report)
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)
    report.seconds = time.monotonic() - started
    return report


def check(home: Path, listing: list[dict[str, str]], report: Report) -> None:
    """The invariants, each broken one a line in ``report.problems``."""
    with contextlib.closing(sqlite3.connect(home / "chaos.db")) as db:
        rows = db.execute(
            "SELECT provider, provider_id, state, reason, retryable, path, sha256, source_sha256"
            " FROM images"
        ).fetchall()
        tasks = db.execute("SELECT id, kind, state, reason FROM tasks").fetchall()
    report.images = len(rows)
    for row in rows:
        report.states[row[2]] = report.states.get(row[2], 0) + 1
    report.problems += listing_problems(listing, rows)
    report.problems += ended_problems(rows)
    report.problems += task_problems(tasks)
    stored = [row for row in rows if row[2] == "stored"]
    report.problems += _file_problems(home / "data", stored)


def listing_problems(listing: list[dict[str, str]], rows: list[tuple[Any, ...]]) -> list[str]:
    """Each listed image has a row that ended as its `expected` says: an image that should
    have been stored but failed, for whatever reason, was lost."""
    ended = {pid.split(":", 1)[1]: state for provider, pid, state, *_ in rows if provider == "urls"}
    problems = []
    for item in listing:
        state = ended.get(item["id"])
        if state is None:
            problems.append(f"listed image {item['id']} has no row")
        elif state in ENDED and state != item["expected"]:
            problems.append(f"listed image {item['id']} ended {state}, not {item['expected']}")
    return problems


def ended_problems(rows: list[tuple[Any, ...]]) -> list[str]:
    """Every row ended, each not stored with a reason, none failed on a transient error: a
    fault or a kill that outlasted its attempts (`lease_lost`) lost the image."""
    problems = []
    for provider, pid, state, reason, retryable, *_ in rows:
        if state not in ENDED:
            problems.append(f"{provider}:{pid} did not end ({state})")
        elif state != "stored" and not reason:
            problems.append(f"{provider}:{pid} ended {state} without a reason")
        elif state == "failed" and retryable:
            problems.append(f"{provider}:{pid} lost: failed for good on a transient {reason}")
    return problems


def task_problems(tasks: list[tuple[Any, ...]]) -> list[str]:
    """Every query task ended done: the photos a window not read would have found have no
    row, so no other check can miss them."""
    return [
        f"task {task_id} ({kind}) ended {state}" + (f": {reason}" if reason else "")
        for task_id, kind, state, reason in tasks
        if state != "done"
    ]


def _file_problems(root: Path, stored: list[tuple[Any, ...]]) -> list[str]:
    problems = []
    paths: dict[str, str] = {}
    sources: dict[str, str] = {}
    for provider, pid, _state, _reason, _retryable, path, sha256, source_sha in stored:
        where = f"{provider}:{pid}"
        if path in paths:
            problems.append(f"{where} and {paths[path]} share {path}")
        if source_sha in sources:
            problems.append(f"{where} stores the same bytes as {sources[source_sha]}")
        paths[path], sources[source_sha] = where, where
        file = root / path
        if not file.is_file():
            problems.append(f"{where}: {path} is missing")
        elif hashlib.sha256(file.read_bytes()).hexdigest() != sha256:
            problems.append(f"{where}: {path} does not match its sha256")
    for file in (f for f in root.rglob("*") if f.is_file()) if root.exists() else ():
        relative = str(file.relative_to(root))
        if TEMP_MARK in file.name:
            problems.append(f"temp file left: {relative}")
        elif relative not in paths:
            problems.append(f"orphan file: {relative}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=int(os.environ.get("CHAOS_IMAGES", 2000)))
    parser.add_argument("--kills", type=int, default=int(os.environ.get("CHAOS_KILLS", 6)))
    parser.add_argument("--seed", type=int, default=int(os.environ.get("CHAOS_SEED", 1)))
    parser.add_argument("--home", type=Path, default=Path(__file__).parent / ".work" / "chaos")
    parser.add_argument("--final-timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    if args.home.exists():
        subprocess.run(["rm", "-rf", str(args.home)], check=True)
    args.home.mkdir(parents=True)
    report = harvest(args.home, args.images, args.kills, args.seed, args.final_timeout)
    print("\n".join(report.lines()))
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "Report",
    "check",
    "ended_problems",
    "harvest",
    "listing_problems",
    "main",
    "task_problems",
]
