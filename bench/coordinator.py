"""The coordinator's CPU in steady state, at an image rate the server sets.

`python -m bench.coordinator RATE [N] [--processes P]`: a loopback server hands out the
*sized* corpus (`make bench` renders it) at RATE images a second, `harvester run
--until-idle` works N rows of it, and the daemon's own utime+stime is read from /proc
while the finished rows go from 10% to 90% of N: start-up and drain left out, so what is
left is the cost per image plus the cost per second (timers, polls) spread over RATE
images. Run it at two rates to tell the two apart; `--tree DIR` runs the daemon of another
checkout (its PYTHONPATH), to compare two in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from aiohttp import web

from bench.run import WORK

TICK = os.sysconf("SC_CLK_TCK")


def _serve(files: list[Path], rate: float, port: list[int], stop: threading.Event) -> None:
    """Each file by name, one every 1/RATE s at most: the pace of a slow CDN."""

    async def main() -> None:
        due = [time.monotonic()]
        bodies = {f.name: f.read_bytes() for f in files}

        async def handler(request: web.Request) -> web.Response:
            now = time.monotonic()
            wait, due[0] = due[0] - now, max(now, due[0]) + 1.0 / rate
            if wait > 0:
                await asyncio.sleep(wait)
            name = request.match_info["name"].split("~")[0]
            return web.Response(body=bodies[name], content_type="image/jpeg")

        app = web.Application()
        app.router.add_get("/{name}", handler)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port.append(runner.addresses[0][1])
        await asyncio.to_thread(stop.wait)
        await runner.cleanup()

    asyncio.run(main())


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def measure(rate: float, n: int, processes: int, tree: Path | None) -> dict[str, float]:
    files = sorted((WORK / "corpus").glob("sized-*.jpg"))[:n]
    if not files:
        raise SystemExit("no sized corpus: run `python -m bench.run --workloads sized` once")
    port: list[int] = []
    stop = threading.Event()
    threading.Thread(target=_serve, args=(files, rate, port, stop), daemon=True).start()
    while not port:
        time.sleep(0.05)
    home = Path(tempfile.mkdtemp(prefix="coordinator-", dir=WORK))
    try:
        urls = home / "urls.csv"
        # Rows beyond the corpus repeat its files under other URLs: skipped as duplicates.
        lines = [f"http://127.0.0.1:{port[0]}/{files[i % len(files)].name}~{i}" for i in range(n)]
        urls.write_text("url\n" + "\n".join(lines) + "\n")
        env = {**os.environ, "HARVESTER_ALLOW_NETWORKS": "127.0.0.1"}
        if tree is not None:
            env["PYTHONPATH"] = str(tree)
        base = [
            sys.executable,
            "-m",
            "harvester",
            f"--database-url=sqlite:///{home / 'q.db'}",
            f"--storage-root={home / 'data'}",
            "--log-level=warning",
        ]
        subprocess.run(
            [*base, "submit", "urls", "--campaign", "c", str(urls)],
            check=True,
            capture_output=True,
            env=env,
        )
        run = [*base, "run", "--until-idle", f"--processes={processes}"]
        with (home / "log").open("w") as log:
            daemon = subprocess.Popen(run, env=env, stdout=log, stderr=log)
        db = sqlite3.connect(f"file:{home / 'q.db'}?mode=ro", uri=True, timeout=5)
        finished = "SELECT count(*) FROM images WHERE state IN ('stored', 'skipped', 'failed')"
        marks: list[tuple[int, float, float]] = []
        for goal in (int(0.1 * n), int(0.9 * n)):
            while daemon.poll() is None:
                done = int(db.execute(finished).fetchone()[0])
                if done >= goal:
                    marks.append((done, _cpu_s(daemon.pid), time.monotonic()))
                    break
                time.sleep(0.05)
        daemon.wait()
        db.close()
        if len(marks) < 2:
            raise SystemExit(f"the daemon ended early; see {home / 'log'}")
        (k0, c0, t0), (k1, c1, t1) = marks
        images, cpu, wall = k1 - k0, c1 - c0, t1 - t0
        return {
            "images_per_s": images / wall,
            "coordinator_ms_per_image": 1000 * cpu / images,
            "coordinator_ms_per_s": 1000 * cpu / wall,
        }
    finally:
        stop.set()
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rate", type=float, help="images a second the server hands out")
    parser.add_argument("n", type=int, nargs="?", default=300, help="rows to harvest")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--tree", type=Path, help="the checkout whose daemon runs")
    args = parser.parse_args()
    got = measure(args.rate, args.n, args.processes, args.tree)
    print(
        f"{got['images_per_s']:.1f} images/s: coordinator {got['coordinator_ms_per_image']:.2f}"
        f" ms CPU per image, {got['coordinator_ms_per_s']:.1f} ms per second"
    )


if __name__ == "__main__":
    main()
