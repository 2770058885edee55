"""`make bench-memory`: 100,000 queued images, the daemon's RSS sampled while it works.

The URL list points at the corpus server (each row a distinct URL: the file
name plus a query string the server ignores), goes in through the real
`harvester submit urls`, and the real daemon then works it for a fixed time
before it is sent SIGTERM. The claim path only ever holds `concurrency` rows,
so RSS must stay flat (and under 400 MB) however deep the queue is; the same
run on a 2,000-row queue is the comparison.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import corpus
from bench.run import HARVESTER, WORK, metered
from bench.server import ServerProcess

LIMIT_MB = 400.0


def _url_list(path: Path, files: list[Path], base_url: str, rows: int) -> None:
    with path.open("w") as out:
        out.write("url\n")
        for n in range(rows):
            out.write(f"{base_url}/{files[n % len(files)].name}?n={n}\n")


def _queue_and_run(rows: int, files: list[Path], base_url: str, seconds: float) -> dict[str, Any]:
    home = WORK / "memory" / f"q{rows}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    base = [
        str(HARVESTER),
        f"--database-url=sqlite:///{home / 'bench.db'}",
        f"--storage-root={home / 'data'}",
        "--log-level=warning",
    ]
    urls = home / "urls.csv"
    _url_list(urls, files, base_url, rows)
    started = time.perf_counter()
    subprocess.run([*base, "submit", "urls", "--campaign", "memory", str(urls)], check=True,
                   capture_output=True)  # fmt: skip
    print(f"  queued {rows} images in {time.perf_counter() - started:.1f} s", flush=True)
    run = [*base, "run", f"--processes={os.cpu_count() or 1}"]
    return metered(run, home / "daemon.log", stop_after_s=seconds)


def _show(rows: int, usage: dict[str, Any]) -> float:
    timeline = usage["rss_timeline"]
    peak = float(usage["peak_rss_root_mb"])
    early = max((mb for t, mb in timeline if t <= 10), default=0.0)
    late = max((mb for t, mb in timeline if t >= usage["wall_s"] - 10), default=0.0)
    print(
        f"  queue {rows:>7}: daemon RSS peak {peak:.0f} MB (first 10 s {early:.0f}, "
        f"last 10 s {late:.0f}); whole tree peak {usage['peak_rss_total_mb']:.0f} MB"
    )
    return peak


def main(argv: list[str] | None = None) -> int:
    # The corpus is served on loopback, which harvester fetches from only when allowed.
    os.environ.setdefault("HARVESTER_ALLOW_NETWORKS", "127.0.0.1")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=int(os.environ.get("BENCH_ROWS", 100_000)))
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", 45)))
    args = parser.parse_args(argv)
    mixed = corpus.WORKLOADS[0]
    count = int(os.environ.get("BENCH_IMAGES", 600))
    files = corpus.build(WORK / "corpus", corpus.recipes(mixed, count))
    peaks: dict[int, float] = {}
    with ServerProcess(WORK / "corpus") as base_url:
        for rows in (2_000, args.rows):
            peaks[rows] = _show(rows, _queue_and_run(rows, files, base_url, args.seconds))
    small, large = peaks[2_000], peaks[args.rows]
    ok = large < LIMIT_MB and large < small * 1.25 + 20
    verdict = "flat" if ok else "GROWS or over the limit"
    print(f"memory: {verdict} (limit {LIMIT_MB:.0f} MB; 2,000 rows {small:.0f} MB, "
          f"{args.rows} rows {large:.0f} MB)")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
