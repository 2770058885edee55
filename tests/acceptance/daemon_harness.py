"""Run the real CLI as subprocesses: the emulator with faults, submit, and daemons to kill."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import os
import signal
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from harvester.db.models import Image
from harvester.db.session import create_engine
from harvester.storage.layout import relative_path
from harvester.storage.local import TEMP_MARK

CLI = [sys.executable, "-m", "harvester.cli"]


@dataclass
class Harness:
    database_url: str
    root: Path
    base_url: str = ""
    emulator: asyncio.subprocess.Process | None = None
    extra_env: dict[str, str] = field(default_factory=dict)  # keys, API URLs, settings

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "HARVESTER_DATABASE_URL": self.database_url,
            "HARVESTER_STORAGE_ROOT": str(self.root),
            "HARVESTER_MAX_ATTEMPTS": "6",
            "HARVESTER_BACKOFF_BASE_SECONDS": "0.05",
            "HARVESTER_BACKOFF_MAX_SECONDS": "0.3",
            "HARVESTER_LEASE_SECONDS": "20",
            "HARVESTER_HEARTBEAT_SECONDS": "2",
            "HARVESTER_PROCESSES": "2",
            "HARVESTER_CONCURRENCY": "8",
            "HARVESTER_LOG_INTERVAL_SECONDS": "1",
            "HARVESTER_ALLOW_NETWORKS": "127.0.0.1",  # the emulator's URL lists are on loopback
            **self.extra_env,
            **extra,
        }

    async def start_emulator(self, *flags: str) -> None:
        self.emulator = await asyncio.create_subprocess_exec(
            *CLI, "emulator", "--port", "0", *flags, stdout=asyncio.subprocess.PIPE
        )
        assert self.emulator.stdout is not None
        line = await asyncio.wait_for(self.emulator.stdout.readline(), 30)
        self.base_url = line.decode().strip()
        assert self.base_url.startswith("http://"), line

    async def stop_emulator(self) -> None:
        if self.emulator and self.emulator.returncode is None:
            self.emulator.terminate()
            await self.emulator.wait()

    async def url_list(self, n: int, path: Path) -> dict[str, str]:
        """Write a URL list of n rows; returns provider_id -> expected final state."""
        url = f"{self.base_url}/_emulator/urls.csv?n={n}&expected=1"
        text = await asyncio.to_thread(_read_text, url)
        rows = list(csv.DictReader(io.StringIO(text)))
        await asyncio.to_thread(path.write_text, text)
        return {f"{path.stem}:{row['id']}": row["expected"] for row in rows}

    async def submit(self, campaign: str, n: int, folder: Path) -> dict[str, str]:
        """Submit a URL list of n rows as `campaign` through the CLI; returns what url_list
        does (its file, in folder, is named after the campaign)."""
        listing = folder / f"{campaign.replace(' ', '_')}.csv"
        expected = await self.url_list(n, listing)
        code, out = await self.cli("submit", "urls", "--campaign", campaign, str(listing))
        assert code == 0, out
        return expected

    async def cli(self, *args: str, limit_s: float = 120) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            *CLI,
            *args,
            env=self.env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), limit_s)
        return int(proc.returncode or 0), out.decode()

    async def start_daemon(self, *flags: str, **env: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *CLI,
            "run",
            *flags,
            env=self.env(**env),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )

    async def count(self, state: str) -> int:
        engine = create_engine(self.database_url)
        try:
            async with engine.connect() as connection:
                result = await connection.execute(
                    select(func.count()).select_from(Image).where(Image.state == state)
                )
                return int(result.scalar_one())
        finally:
            await engine.dispose()

    async def wait_for_stored(self, at_least: int, limit_s: float = 90) -> None:
        async with asyncio.timeout(limit_s):
            while await self.count("stored") < at_least:  # noqa: ASYNC110 - polling another process's DB
                await asyncio.sleep(0.1)

    async def rows(self) -> list[Any]:
        engine = create_engine(self.database_url)
        try:
            async with engine.connect() as connection:
                return list((await connection.execute(select(Image))).all())
        finally:
            await engine.dispose()


def kill_group(proc: asyncio.subprocess.Process, signum: int = signal.SIGKILL) -> None:
    """The daemon and its pool processes, as a container stop or an OOM kill would."""
    os.killpg(proc.pid, signum)


def check_harvest(rows: list[Any], expected: dict[str, str], root: Path) -> None:
    """Every image in its expected final state, each stored once, every file whole."""
    assert {row.provider_id for row in rows} == set(expected)
    wrong = [
        (r.provider_id, r.state, r.last_error) for r in rows if r.state != expected[r.provider_id]
    ]
    assert not wrong, wrong
    assert all(r.last_error for r in rows if r.state == "failed"), "a failed row has no reason"
    planned = {relative_path(r.provider, r.group_name, r.shard, r.file_name) for r in rows}
    assert len(planned) == len(rows), "two rows share one file path"
    assert all((r.path is None) == (r.state != "stored") for r in rows), "a path on an unstored row"
    stored = {r.path: r for r in rows if r.state == "stored"}
    on_disk = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    left = [p for p in on_disk if TEMP_MARK in p]
    assert not left, f"temp files left behind: {left}"
    assert on_disk == set(stored), "files on disk differ from stored rows"
    for path, row in stored.items():
        assert hashlib.sha256((root / path).read_bytes()).hexdigest() == row.sha256, path


def _read_text(url: str) -> str:
    with urllib.request.urlopen(url) as resp:  # closed: an open socket warns (an error here)
        return str(resp.read().decode())
