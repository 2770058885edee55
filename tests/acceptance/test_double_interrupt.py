"""Ctrl-C twice on `harvester run`, as a terminal sends it (to the whole process group): the
first drains, the second exits at once, in one line, and the next run finds nothing
half-written."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import urllib.request
from pathlib import Path

from daemon_harness import Harness, check_harvest, kill_group

# A bound for a loaded machine, not a timing property: the workers exit once they see their
# socket close, which takes up to 2 s on a busy core. One that never exits still fails.
GONE_S = 30.0


async def _lines_until(stream: asyncio.StreamReader, marker: str, seen: list[str]) -> None:
    async with asyncio.timeout(60):
        while marker not in (line := (await stream.readline()).decode()):
            assert line, f"the daemon ended before {marker!r}: {''.join(seen)}"
            seen.append(line)
        seen.append(line)


async def _group_gone(proc: asyncio.subprocess.Process) -> bool:
    """True once no process of the daemon's group is left (its image workers included),
    False if one is still there after GONE_S."""
    try:
        async with asyncio.timeout(GONE_S):
            while True:
                try:
                    os.killpg(proc.pid, 0)
                except ProcessLookupError:
                    return True
                await asyncio.sleep(0.05)
    except TimeoutError:
        return False


def _has_open(pid: int, file: Path) -> bool:
    """True if the process holds `file` open; an fd closed while we look is not it."""
    wanted = str(file.resolve())
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd) == wanted:
                return True
        except FileNotFoundError:  # closed between the listing and the look
            continue
    return False


def _calm(base_url: str) -> None:
    request = urllib.request.Request(f"{base_url}/_emulator/faults?latency_ms=0", method="POST")
    urllib.request.urlopen(request, timeout=10).close()


async def test_a_second_ctrl_c_during_the_drain_exits_at_once_in_one_line_losing_nothing(
    harness: Harness, tmp_path: Path
) -> None:
    await harness.start_emulator("--latency-ms", "4000")  # a drain of several seconds
    expected = await harness.submit("victims", 40, tmp_path)
    daemon = await harness.start_daemon("--grace", "60")
    assert daemon.stdout is not None
    seen: list[str] = []
    await _lines_until(daemon.stdout, '"daemon_started"', seen)
    async with asyncio.timeout(60):
        while await harness.count("running") == 0:  # noqa: ASYNC110 - another process's rows
            await asyncio.sleep(0.05)
    kill_group(daemon, signal.SIGINT)
    await _lines_until(daemon.stdout, '"draining"', seen)
    kill_group(daemon, signal.SIGINT)
    rest = (await asyncio.wait_for(daemon.stdout.read(), 30)).decode()
    assert await daemon.wait() == 130, "".join(seen) + rest
    said = "".join(seen) + rest
    assert "Traceback" not in said, said
    assert rest.splitlines()[-1:] == [
        "harvester: SIGINT again, stopped at once; the next start takes back the rows in flight"
    ], rest
    assert await _group_gone(daemon), "image workers outlived the daemon"

    await asyncio.to_thread(_calm, harness.base_url)
    code, out = await harness.cli("run", "--until-idle", limit_s=180)
    assert code == 0, out
    assert "leases_recovered" in out  # the rows it held were taken back at once
    check_harvest(await harness.rows(), expected, harness.root)  # every file whole, none stray


async def test_ctrl_c_twice_while_the_daemon_starts_exits_in_one_line_without_a_traceback(
    harness: Harness, sqlite_url: str, tmp_path: Path
) -> None:
    code, out = await harness.cli("db", "upgrade")
    assert code == 0, out
    database = sqlite_url.removeprefix("sqlite:///")
    blocker = sqlite3.connect(database, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # the daemon's start waits on the database
    try:
        daemon = await harness.start_daemon()
        async with asyncio.timeout(60):  # loaded, and opening the database
            while not _has_open(daemon.pid, Path(database)):  # noqa: ASYNC110 - another process
                await asyncio.sleep(0.02)
        kill_group(daemon, signal.SIGINT)
        await asyncio.sleep(0.3)
        if daemon.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # ended (and reaped) meanwhile
                kill_group(daemon, signal.SIGINT)
        assert daemon.stdout is not None
        said = (await asyncio.wait_for(daemon.stdout.read(), 60)).decode()
        assert await daemon.wait() == 130, said
    finally:
        blocker.close()
    assert "Traceback" not in said and "sqlalchemy" not in said.lower(), said
    assert said.splitlines()[-1].startswith("harvester: "), said
    assert await _group_gone(daemon)
