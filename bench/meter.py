"""Run one command and measure what it really cost: wall time, CPU of every process, RSS.

The meter makes itself a child subreaper, so processes the command leaves behind
(multiprocessing's forkserver and its workers) are reparented here and reaped here:
`RUSAGE_CHILDREN` then holds the CPU of the whole tree, not only the direct child.
RSS is sampled from /proc over the tree while it runs.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
SAMPLE_INTERVAL_S = 0.25  # a /proc scan costs CPU on the cores being measured
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Usage:
    """What one command cost, all its processes included."""

    returncode: int
    wall_s: float
    cpu_user_s: float
    cpu_sys_s: float
    peak_rss_total_mb: float  # the tree's RSS summed, at its highest sample
    peak_rss_root_mb: float  # the command's own process (the daemon)
    peak_rss_max_mb: float  # the largest single process (ru_maxrss)
    processes_seen: int
    cpu_by_process: list[tuple[int, str, float]]  # sampled: misses each one's last 0.1 s
    rss_timeline: list[tuple[float, float]]
    root_cpu_s: float  # the command's own process alone (the coordinator), read at its exit

    @property
    def cpu_s(self) -> float:
        return self.cpu_user_s + self.cpu_sys_s


def _become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


_TICK = os.sysconf("SC_CLK_TCK")


def _tree(root_parent: int, cpu: dict[int, tuple[str, float]]) -> dict[int, int]:
    """pid -> RSS bytes of every process below `root_parent`; updates pid -> (name, CPU s)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    ticks: dict[int, tuple[str, float]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            statm = Path(entry.path, "statm").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        rss[pid] = int(statm.split()[1]) * _PAGE
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        ticks[pid] = (name, (int(fields[11]) + int(fields[12])) / _TICK)
    below: dict[int, int] = {}
    for pid in parents:
        p = pid
        while p in parents and p != root_parent:
            p = parents[p]
        if p == root_parent:
            below[pid] = rss[pid]
            cpu[pid] = ticks[pid]
    return below


class _Sampler(threading.Thread):
    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.done = threading.Event()
        self.peak_total = 0
        self.peak_root = 0
        self.seen: set[int] = set()
        self.cpu: dict[int, tuple[str, float]] = {}
        self.timeline: list[tuple[float, float]] = []  # (seconds, root RSS MB), once a second

    def run(self) -> None:
        me = os.getpid()
        started = time.monotonic()
        while not self.done.is_set():
            tree = _tree(me, self.cpu)
            elapsed = time.monotonic() - started
            if not self.timeline or elapsed - self.timeline[-1][0] >= 1.0:
                self.timeline.append((round(elapsed, 1), tree.get(self.root, 0) / 2**20))
            self.seen.update(tree)
            self.peak_total = max(self.peak_total, sum(tree.values()))
            self.peak_root = max(self.peak_root, tree.get(self.root, 0))
            self.done.wait(SAMPLE_INTERVAL_S)


def _wait_exited(proc: subprocess.Popen[bytes], stop_after_s: float | None) -> float:
    """Wait for `proc` to exit (SIGTERM after `stop_after_s`); its own CPU seconds.

    Read from /proc while it is a zombie, before it is reaped: then the count is final and
    holds only its own CPU, not that of children it reaped.
    """
    deadline = None if stop_after_s is None else time.monotonic() + stop_after_s
    while os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is None:
        if deadline is not None and time.monotonic() > deadline:
            proc.send_signal(signal.SIGTERM)
            deadline = None
        time.sleep(0.02)
    stat = Path(f"/proc/{proc.pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _reap_all() -> None:
    """Wait for every descendant the subreaper inherited, so its CPU is counted."""
    while True:
        try:
            pid, _status = os.waitpid(-1, 0)
        except ChildProcessError:
            return
        if pid == 0:
            return


def measure(argv: Sequence[str], *, log: Path | None, stop_after_s: float | None = None) -> Usage:
    """Run `argv` in this (subreaper) process and return its usage.

    With `stop_after_s` the command is sent SIGTERM then (a daemon drains and exits).
    """
    _become_subreaper()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = open(log, "wb") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    started = time.perf_counter()
    try:
        proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT)
        sampler = _Sampler(proc.pid)
        sampler.start()
        root_cpu_s = _wait_exited(proc, stop_after_s)
        returncode = proc.wait()
        wall = time.perf_counter() - started
        _reap_all()
        sampler.done.set()
        sampler.join()
    finally:
        if log is not None and not isinstance(out, int):
            out.close()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Usage(
        returncode=returncode,
        wall_s=wall,
        cpu_user_s=after.ru_utime - before.ru_utime,
        cpu_sys_s=after.ru_stime - before.ru_stime,
        peak_rss_total_mb=sampler.peak_total / 2**20,
        peak_rss_root_mb=sampler.peak_root / 2**20,
        peak_rss_max_mb=after.ru_maxrss / 1024,
        processes_seen=len(sampler.seen),
        cpu_by_process=sorted(
            ((pid, name, round(s, 2)) for pid, (name, s) in sampler.cpu.items()),
            key=lambda t: -t[2],
        ),
        rss_timeline=[(t, round(mb, 1)) for t, mb in sampler.timeline],
        root_cpu_s=root_cpu_s,
    )


def main(argv: Sequence[str]) -> int:
    """`python -m bench.meter LOG [SECONDS] -- CMD...`: prints the usage as one JSON line."""
    if "--" not in argv or argv.index("--") not in (1, 2) or len(argv) < 3:
        print("usage: python -m bench.meter LOGFILE [STOP_AFTER_S] -- CMD...", file=sys.stderr)
        return 2
    split = argv.index("--")
    stop_after = float(argv[1]) if split == 2 else None
    usage = measure(argv[split + 1 :], log=Path(argv[0]), stop_after_s=stop_after)
    print(json.dumps({**asdict(usage), "cpu_s": usage.cpu_s}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
