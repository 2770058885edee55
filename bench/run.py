"""`make bench`: img2dataset and harvester on the same URL list, side by side, in one run.

Both fetch the same corpus from one loopback server and store the longer side
at 1024 px, JPEG q90, as files on disk, with their processes sized to the
machine's cores. Harvester runs as the real CLI on a fresh SQLite database, so
its numbers include everything it does: queue claims, frame detection, EXIF,
sha256, atomic writes and database records. Each tool runs under `bench.meter`,
which counts the CPU of every process it started.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from bench import corpus, floor, quality
from bench.server import ServerProcess

BENCH = Path(__file__).resolve().parent
WORK = BENCH / ".work"
ROOT = BENCH.parent
HARVESTER = ROOT / ".venv" / "bin" / "harvester"
I2D_VENV = WORK / "i2d-venv"
I2D = I2D_VENV / "bin" / "img2dataset"
I2D_VERSION = "1.47.0"


@dataclass
class Run:
    tool: str
    images: int
    usage: dict[str, Any]

    @property
    def images_per_s(self) -> float:
        return self.images / float(self.usage["wall_s"])

    @property
    def cpu_ms_per_image(self) -> float:
        return 1000 * float(self.usage["cpu_s"]) / max(1, self.images)


def metered(argv: list[str], log: Path, stop_after_s: float | None = None) -> dict[str, Any]:
    """Run `argv` under the meter (its own subreaper process) and return its usage."""
    stop = [str(stop_after_s)] if stop_after_s is not None else []
    out = subprocess.run(
        [sys.executable, "-m", "bench.meter", str(log), *stop, "--", *argv],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    load = os.getloadavg()[0]
    usage: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    usage["load_before"] = load
    usage["root_cpu_s"] = usage.get("root_cpu_s", 0.0)
    if usage["returncode"] != 0:
        raise SystemExit(f"{argv[0]} exited {usage['returncode']}; see {log}")
    return usage


def ensure_img2dataset() -> str | None:
    """Install img2dataset into its own venv if missing; the reason it is unusable, or None."""
    if I2D.exists():
        return None
    print(f"installing img2dataset {I2D_VERSION} into {I2D_VENV} ...", flush=True)
    log = WORK / "i2d-install.log"
    with log.open("w") as out:
        steps = [
            [sys.executable, "-m", "venv", str(I2D_VENV)],
            [str(I2D_VENV / "bin" / "pip"), "install", "-q", f"img2dataset=={I2D_VERSION}"],
        ]
        for step in steps:
            if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                shutil.rmtree(I2D_VENV, ignore_errors=True)
                return f"`{' '.join(step[-2:])}` failed; see {log}"
    return None


def run_img2dataset(
    url_list: Path, work: Path, processes: int, threads: int, *, skip_reencode: bool = False
) -> Run:
    out = work / "i2d-out"
    shutil.rmtree(out, ignore_errors=True)
    rows = sum(1 for _ in url_list.open()) - 1
    argv = [
        str(I2D),
        f"--url_list={url_list}",
        "--input_format=csv",
        "--url_col=url",
        f"--output_folder={out}",
        "--output_format=files",
        # keep_ratio_largest: the longer side becomes 1024, as harvester stores it
        # (img2dataset's keep_ratio would set the *shorter* side to 1024).
        "--resize_mode=keep_ratio_largest",
        "--image_size=1024",
        "--resize_only_if_bigger=True",
        "--encode_quality=90",
        f"--processes_count={processes}",
        f"--thread_count={threads}",
        f"--number_sample_per_shard={max(50, rows // (processes * 8))}",
        "--distributor=multiprocessing",
        "--enable_wandb=False",
        "--retries=0",
        "--timeout=30",
    ]
    if skip_reencode:
        argv.append("--skip_reencode=True")
    os.environ["NO_ALBUMENTATIONS_UPDATE"] = "1"
    usage = metered(argv, work / "i2d.log")
    tool = "img2dataset --skip_reencode" if skip_reencode else "img2dataset"
    return Run(tool, sum(1 for _ in out.rglob("*.jpg")), usage)


def run_harvester(
    url_list: Path | None,
    work: Path,
    processes: int,
    concurrency: int | None,
    items: list[corpus.Item],
) -> Run:
    """A URL list submitted, then the daemon until idle; no list: on an empty queue."""
    home = work / "harvester"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    db = home / "bench.db"
    base = [
        str(HARVESTER),
        f"--database-url=sqlite:///{db}",
        f"--storage-root={home / 'data'}",
        "--log-level=warning",
    ]
    started = time.perf_counter()
    # A list of no rows is refused: the empty queue is a migrated database.
    submit = (
        ["submit", "urls", "--campaign", "bench", str(url_list)] if url_list else ["db", "upgrade"]
    )
    subprocess.run([*base, *submit], check=True, capture_output=True)
    done = "submitted the URL list" if url_list else "migrated the database"
    print(f"harvester: {done} in {time.perf_counter() - started:.1f} s")
    run = [*base, "run", "--until-idle", f"--processes={processes}"]
    if concurrency:
        run.append(f"--concurrency={concurrency}")
    usage = metered(run, work / "harvester.log")
    with sqlite3.connect(db) as connection:
        states = dict(connection.execute("SELECT state, count(*) FROM images GROUP BY state"))
    usage["states"] = states
    score = quality.measure(db, home / "data", WORK / "corpus", items)
    usage["quality"] = score
    return Run("harvester", int(states.get("stored", 0)), usage)


def write_url_list(files: list[Path], base_url: str, path: Path) -> None:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["url"])
        writer.writerows([f"{base_url}/{f.name}"] for f in files)


def harvester_startup(work: Path, processes: int) -> dict[str, Any]:
    """The daemon on an empty queue: imports, migrations, pool start and stop, once.

    A fixed cost, not a per-image one: rows report CPU per image net of it (and gross)."""
    return run_harvester(None, work, processes, None, []).usage


@dataclass
class Result:
    workload: str
    note: str
    runs: list[Run]
    floor: floor.Floor
    cores: int
    startup: dict[str, Any]

    def of(self, tool: str) -> list[Run]:
        return [r for r in self.runs if r.tool == tool]

    def summary(self) -> list[dict[str, Any]]:
        """One row per tool: medians over the rounds, ratios of harvester to this tool."""
        ours = self.of("harvester")
        rows = []
        for tool in dict.fromkeys(r.tool for r in self.runs):
            runs = self.of(tool)
            row: dict[str, Any] = {
                "workload": self.workload,
                "tool": tool,
                "images": runs[0].images,
                "images_per_s": statistics.median(r.images_per_s for r in runs),
                "cpu_ms_per_image": statistics.median(r.cpu_ms_per_image for r in runs),
                "busy_pct": statistics.median(
                    100 * float(r.usage["cpu_s"]) / (float(r.usage["wall_s"]) * self.cores)
                    for r in runs
                ),
                "peak_rss_tree_mb": max(float(r.usage["peak_rss_total_mb"]) for r in runs),
                "rounds_images_per_s": [round(r.images_per_s, 1) for r in runs],
            }
            if tool == "harvester":
                fixed_all, fixed_root = self.startup["cpu_s"], self.startup["root_cpu_s"]
                row["cpu_ms_per_image_net"] = statistics.median(
                    1000 * (float(r.usage["cpu_s"]) - fixed_all) / max(1, r.images) for r in runs
                )
                row["coordinator_ms_per_image_gross"] = statistics.median(
                    1000 * float(r.usage["root_cpu_s"]) / max(1, r.images) for r in runs
                )
                row["coordinator_ms_per_image"] = statistics.median(
                    1000 * (float(r.usage["root_cpu_s"]) - fixed_root) / max(1, r.images)
                    for r in runs
                )
                row["floor_ms_per_image"] = self.floor.ms_per_image
                row["quality"] = runs[-1].usage.get("quality")
            elif ours:
                # Side by side: each harvester round against the same round of this tool.
                ratios = [h.images_per_s / o.images_per_s for h, o in zip(ours, runs, strict=False)]
                row["harvester_ratio"] = statistics.median(ratios)
                row["harvester_ratios"] = [round(x, 2) for x in ratios]
            rows.append(row)
        return rows


def report(results: list[Result]) -> list[dict[str, Any]]:
    rows = [row for result in results for row in result.summary()]
    print()
    for result in results:
        print(f"{result.workload}: {result.note}")
    startup = results[0].startup if results else None
    if startup is not None:
        print(
            f"harvester start-up and stop on an empty queue: {startup['wall_s']:.1f} s, CPU "
            f"{startup['cpu_s']:.2f} s ({startup['root_cpu_s']:.2f} s coordinator); "
            "'net' = per image after taking it off"
        )
    print(
        f"\n{'workload':<8} {'tool':<27} {'img/s':>7} {'harvester x':>11} {'CPU ms/img':>10} "
        f"{'net':>5} {'coord net':>9} {'floor ms':>8} {'busy %':>6} {'RSS MB':>6}  PSNR"
    )
    for row in rows:
        ratio = row.get("harvester_ratio")
        score = row.get("quality")
        psnr = (
            f"mean {score.mean_psnr_db:.1f} dB, min {score.min_psnr_db:.1f}, "
            f"{score.identical}/{score.images} identical"
            if score is not None
            else ""
        )
        print(
            f"{row['workload']:<8} {row['tool']:<27} {row['images_per_s']:>7.1f} "
            f"{f'{ratio:.2f}x' if ratio else '':>11} {row['cpu_ms_per_image']:>10.1f} "
            f"{_ms(row, 'cpu_ms_per_image_net'):>5} {_ms(row, 'coordinator_ms_per_image'):>9} "
            f"{_ms(row, 'floor_ms_per_image'):>8} "
            f"{row['busy_pct']:>6.0f} {row['peak_rss_tree_mb']:>6.0f}  {psnr}"
        )
    return rows


def _ms(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    return f"{value:.1f}" if isinstance(value, float) else ""


def run_workload(
    workload: corpus.Workload,
    args: argparse.Namespace,
    server: ServerProcess,
    base_url: str,
    skipped: str | None,
    startup: dict[str, Any],
) -> Result:
    items = corpus.recipes(workload, corpus.count_for(workload, args.images))
    files = corpus.build(WORK / "corpus", items)
    work = WORK / "run"
    work.mkdir(exist_ok=True)
    url_list = work / f"{workload.name}.csv"
    write_url_list(files, base_url, url_list)
    for f in files:  # page cache warm for both tools alike
        f.read_bytes()
    tools: list[tuple[str, Callable[[], Run]]] = []
    if not skipped and args.only != "harvester":
        i2d = partial(run_img2dataset, url_list, work, args.processes, args.threads)
        tools.append(("img2dataset", i2d))
        if workload.name == "sized":
            tools.append(("img2dataset --skip_reencode", partial(i2d, skip_reencode=True)))
    if args.only != "img2dataset":
        ours = partial(run_harvester, url_list, work, args.processes, args.concurrency, items)
        tools.append(("harvester", ours))
    runs: list[Run] = []
    # The machine's speed drifts between minutes: rounds alternate which tool goes first.
    for round_ in range(args.rounds):
        for name, run in tools if round_ % 2 == 0 else tools[::-1]:
            print(f"{workload.name} round {round_ + 1}: running {name} ...", flush=True)
            served = server.cpu_s()
            runs.append(run())
            spent = server.cpu_s() - served
            runs[-1].usage["server_cpu_ms_per_image"] = 1000 * spent / max(1, runs[-1].images)
    busy = floor.measure_loaded(files, args.processes)
    return Result(workload.name, corpus.describe(files), runs, busy, args.processes, startup)


def main(argv: list[str] | None = None) -> int:
    # The corpus is served on loopback, which harvester fetches from only when allowed.
    os.environ.setdefault("HARVESTER_ALLOW_NETWORKS", "127.0.0.1")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    quick = os.environ.get("BENCH_QUICK") == "1"
    images = int(os.environ.get("BENCH_IMAGES", 100 if quick else 600))
    parser.add_argument("--images", type=int, default=images)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--concurrency", type=int, default=None, help="harvester --concurrency")
    parser.add_argument("--threads", type=int, default=32, help="img2dataset threads/process")
    parser.add_argument("--only", choices=["harvester", "img2dataset"])
    parser.add_argument("--workloads", default="mixed,camera,sized")
    rounds = int(os.environ.get("BENCH_ROUNDS", 1 if quick else 2))
    parser.add_argument("--rounds", type=int, default=rounds)
    args = parser.parse_args(argv)

    (WORK / "corpus").mkdir(parents=True, exist_ok=True)
    skipped = ensure_img2dataset() if args.only != "harvester" else "not asked for"
    if skipped and args.only != "harvester":
        print(f"img2dataset cannot be run: {skipped}", file=sys.stderr)
    wanted = args.workloads.split(",")
    results = []
    work = WORK / "run"
    work.mkdir(exist_ok=True)
    startup = harvester_startup(work, args.processes)
    server = ServerProcess(WORK / "corpus")
    with server as base_url:
        for workload in [w for w in corpus.WORKLOADS if w.name in wanted]:
            results.append(run_workload(workload, args, server, base_url, skipped, startup))
    served = statistics.median(
        float(run.usage["server_cpu_ms_per_image"]) for r in results for run in r.runs
    )
    print(f"the corpus server ({server.kind}) spent {served:.2f} ms of CPU an image (median)")
    rows = report(results)
    out = {"cores": args.processes, "loadavg": os.getloadavg(), "rows": rows,
           "runs": [{"workload": r.workload, "tool": run.tool, "images": run.images, **run.usage}
                    for r in results for run in r.runs]}  # fmt: skip
    (WORK / "results.json").write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
