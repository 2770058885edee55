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


def run_img2dataset(url_list: Path, work: Path, processes: int, threads: int) -> Run:
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
    env_note = {"NO_ALBUMENTATIONS_UPDATE": "1"}
    os.environ.update(env_note)
    usage = metered(argv, work / "i2d.log")
    return Run("img2dataset", sum(1 for _ in out.rglob("*.jpg")), usage)


def run_harvester(url_list: Path, work: Path, processes: int, concurrency: int | None) -> Run:
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
    subprocess.run(
        [*base, "submit", "urls", "--campaign", "bench", str(url_list)],
        check=True,
        capture_output=True,
    )
    print(f"harvester: submitted the URL list in {time.perf_counter() - started:.1f} s")
    run = [*base, "run", "--until-idle", f"--processes={processes}"]
    if concurrency:
        run.append(f"--concurrency={concurrency}")
    usage = metered(run, work / "harvester.log")
    with sqlite3.connect(db) as connection:
        states = dict(connection.execute("SELECT state, count(*) FROM images GROUP BY state"))
    usage["states"] = states
    score = quality.measure(db, home / "data", WORK / "corpus", len(urls_in(url_list)))
    usage["quality"] = score
    return Run("harvester", int(states.get("stored", 0)), usage)


def urls_in(url_list: Path) -> list[str]:
    return url_list.read_text().splitlines()[1:]


def write_url_list(files: list[Path], base_url: str, path: Path) -> None:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["url"])
        writer.writerows([f"{base_url}/{f.name}"] for f in files)


def report(
    runs: list[Run], alone: floor.Floor, busy: floor.Floor, cores: int, corpus_note: str
) -> dict[str, Any]:
    print(f"\ncorpus: {corpus_note}; {cores} cores")
    print(f"{'tool':<12} {'images':>7} {'wall s':>7} {'img/s':>7} {'CPU ms/img':>10} "
          f"{'peak RSS MB (tree / main)':>26}")  # fmt: skip
    for r in runs:
        u = r.usage
        print(
            f"{r.tool:<12} {r.images:>7} {u['wall_s']:>7.1f} {r.images_per_s:>7.1f} "
            f"{r.cpu_ms_per_image:>10.1f} "
            f"{u['peak_rss_total_mb']:>16.0f} / {u['peak_rss_root_mb']:.0f}"
        )
    by = {r.tool: r for r in runs}
    result: dict[str, Any] = {
        "floor_ms_per_image": alone.ms_per_image,
        "floor_all_cores_busy_ms_per_image": busy.ms_per_image,
        "cores": cores,
        "runs": [{"tool": r.tool, **r.usage, "images": r.images, "images_per_s": r.images_per_s,
                  "cpu_ms_per_image": r.cpu_ms_per_image} for r in runs],
    }  # fmt: skip
    print(
        f"floor (DCT-scaled decode + resize + encode): {alone.ms_per_image:.1f} ms/img on one "
        f"core alone, {busy.ms_per_image:.1f} with all {cores} busy (median of rounds) "
        f"= {busy.images_per_s * cores:.0f} img/s for the machine"
    )
    for r in runs:
        split = ", ".join(
            f"{name}[{pid}] {1000 * cpu / max(1, r.images):.1f}"
            for pid, name, cpu in r.usage["cpu_by_process"][:5]
        )
        print(f"{r.tool} CPU ms/img by process: {split}; load {r.usage['load_before']:.1f}")
    if "harvester" in by:
        h = by["harvester"]
        median = statistics.median(r.images_per_s for r in _of(runs, "harvester"))
        fraction = median / (busy.images_per_s * cores)
        result["harvester_fraction_of_floor"] = fraction
        print(f"harvester: {100 * fraction:.0f}% of floor x cores; states {h.usage['states']}")
        score = h.usage.get("quality")
        if score is not None:
            print(
                f"harvester quality vs full decode + Lanczos, {score.images} unframed images: "
                f"PSNR mean {score.mean_psnr_db:.1f} dB, min {score.min_psnr_db:.1f} dB"
            )
    if "harvester" in by and "img2dataset" in by:
        ratios = [
            h.images_per_s / i.images_per_s
            for h, i in zip(_of(runs, "harvester"), _of(runs, "img2dataset"), strict=False)
        ]
        result["ratios"] = ratios
        result["ratio"] = statistics.median(ratios)
        rounds = ", ".join(f"{r:.2f}x" for r in ratios)
        print(f"harvester / img2dataset: median {result['ratio']:.2f}x images/s (rounds: {rounds})")
        # What the ratio would be if harvester spent nothing beyond the floor, at equal use of
        # the cores: the most any overhead work can buy on this corpus and machine.
        i2d_ms = statistics.median(r.cpu_ms_per_image for r in _of(runs, "img2dataset"))
        result["ratio_ceiling"] = i2d_ms / busy.ms_per_image
        print(
            f"ratio ceiling (img2dataset CPU ms/img / busy floor): {result['ratio_ceiling']:.2f}x"
        )
    return result


def _of(runs: list[Run], tool: str) -> list[Run]:
    return [r for r in runs if r.tool == tool]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=int(os.environ.get("BENCH_IMAGES", 1500)))
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--concurrency", type=int, default=None, help="harvester --concurrency")
    parser.add_argument("--threads", type=int, default=32, help="img2dataset threads/process")
    parser.add_argument("--only", choices=["harvester", "img2dataset"])
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", 3)))
    args = parser.parse_args(argv)

    WORK.mkdir(parents=True, exist_ok=True)
    files = corpus.build(WORK / "corpus", args.images)
    note = corpus.describe(files)
    work = WORK / "run"
    work.mkdir(exist_ok=True)
    skipped = ensure_img2dataset() if args.only != "harvester" else "not asked for"
    if skipped and args.only != "harvester":
        print(f"img2dataset cannot be run: {skipped}", file=sys.stderr)
    runs: list[Run] = []
    with ServerProcess(WORK / "corpus") as base_url:
        url_list = work / "urls.csv"
        write_url_list(files, base_url, url_list)
        for f in files:  # page cache warm for both tools alike
            f.read_bytes()
        tools: list[tuple[str, Callable[[], Run]]] = []
        if not skipped and args.only != "harvester":
            i2d = partial(run_img2dataset, url_list, work, args.processes, args.threads)
            tools.append(("img2dataset", i2d))
        if args.only != "img2dataset":
            ours = partial(run_harvester, url_list, work, args.processes, args.concurrency)
            tools.append(("harvester", ours))
        # The machine's speed drifts between minutes: rounds alternate which tool goes first.
        loaded: list[floor.Floor] = []
        for round_ in range(args.rounds):
            for name, run in tools if round_ % 2 == 0 else tools[::-1]:
                print(f"round {round_ + 1}: running {name} ...", flush=True)
                runs.append(run())
            loaded.append(floor.measure_loaded(files, args.processes))
    alone = floor.measure(files)
    busy = sorted(loaded, key=lambda f: f.ms_per_image)[len(loaded) // 2]
    result = report(runs, alone, busy, args.processes, note)
    (WORK / "results.json").write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
