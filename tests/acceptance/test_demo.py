"""`harvester demo` (what `make demo` runs): interrupted, moved to another port, re-run."""

from __future__ import annotations

import errno
import os
import re
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from defaults import MAX_ATTEMPTS
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.campaigns import ensure_campaign
from harvester.db.catalog import add_images
from harvester.db.models import Image, Task
from harvester.demo import PREFERRED_PORT, SUBMITTERS, why_not_stored
from harvester.emulator import RunningEmulator
from harvester.records import FoundImage

CLI = [sys.executable, "-m", "harvester.cli", "demo"]


def _stored_files(home: Path) -> list[Path]:
    return [p for p in (home / "data").rglob("*.jpg") if p.is_file()]


def _export_as_suggested(demo_output: str, cwd: Path) -> None:
    """Runs the export command the demo printed, as printed, and checks it made the layout."""
    suggested = next(line for line in demo_output.splitlines() if " export " in line)
    argv = shlex.split(suggested.replace(".venv/bin/harvester", "", 1))
    exported = subprocess.run([sys.executable, "-m", "harvester.cli", *argv], cwd=cwd,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
    assert exported.returncode == 0, exported.stdout + exported.stderr
    gallery = cwd / "harvester-demo" / "vpr" / "images" / "train" / "gallery"
    assert list(gallery.glob("@*.jpg"))


def test_demo_resumes_after_a_kill_even_on_another_port_and_reruns_add_nothing(tmp_path: Path):
    first = subprocess.Popen(CLI, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)  # fmt: skip
    home = tmp_path / "harvester-demo"
    deadline = time.monotonic() + 60
    while len(_stored_files(home)) < 20 if home.exists() else True:
        assert time.monotonic() < deadline and first.poll() is None, "demo stored nothing"
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.communicate(timeout=60)  # reaped, its pipe read to the end and closed

    with socket.socket() as squatter:  # the emulator's usual port is taken this time
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            squatter.bind(("127.0.0.1", PREFERRED_PORT))
            squatter.listen()
        except OSError as exc:  # taken already (another demo on a shared machine): as good
            if exc.errno != errno.EADDRINUSE:
                raise
        second = subprocess.run(CLI, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"127.0.0.1:{PREFERRED_PORT}" not in second.stdout.splitlines()[0]
    assert "stored" in second.stdout and " queued" not in second.stdout
    assert "demo finished in" in second.stdout and "left to do" not in second.stdout
    assert re.search(r"^  skipped \d+: [a-z0-9_]+ \d+", second.stdout, re.MULTILINE)
    files = {p: p.stat().st_mtime_ns for p in _stored_files(home)}
    assert not [p for p in home.rglob("*") if ".tmp-" in p.name]

    # The export it suggests works as printed (the storage root is the demo's, not `data`).
    _export_as_suggested(second.stdout, tmp_path)

    third = subprocess.run(CLI, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert third.returncode == 0, third.stdout + third.stderr
    assert "0 new images" in third.stdout and "0 tasks" in third.stdout
    assert {p: p.stat().st_mtime_ns for p in _stored_files(home)} == files, "files rewritten"


def test_a_demo_stopped_by_ctrl_c_says_what_is_left_not_that_it_finished(tmp_path: Path):
    """Ctrl-C drains what is in flight; the summary then says how much is left, as the
    tables hold it, and how to finish it, never "demo finished"."""
    demo = subprocess.Popen(CLI, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)  # fmt: skip
    home = tmp_path / "harvester-demo"
    deadline = time.monotonic() + 60
    while len(_stored_files(home)) < 20 if home.exists() else True:
        assert time.monotonic() < deadline and demo.poll() is None, "demo stored nothing"
        time.sleep(0.2)
    os.killpg(demo.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends: the whole group
    out, _ = demo.communicate(timeout=120)
    with sqlite3.connect(home / "harvester.db") as db:
        (images,) = db.execute(
            "SELECT count(*) FROM images WHERE state IN ('queued', 'running')"
        ).fetchone()
        (tasks,) = db.execute(
            "SELECT count(*) FROM tasks WHERE state IN ('queued', 'running')"
        ).fetchone()
    assert images + tasks > 0, out
    assert "demo finished" not in out, out
    assert f"with {images} images and {tasks} tasks left to do (re-run it" in out, out


def test_the_demo_keeps_its_database_and_files_where_the_command_line_puts_them(tmp_path: Path):
    """`--database-url` and `--storage-root` were ignored: the demo wrote to ./harvester-demo."""
    db, root, cwd = tmp_path / "my demo.db", tmp_path / "my store", tmp_path / "cwd"
    cwd.mkdir()
    flags = ["--database-url", f"sqlite:///{db}", "--storage-root", str(root)]
    done = subprocess.run([*CLI[:-1], *flags, "demo"], cwd=cwd, capture_output=True, text=True,
                          timeout=180)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    home = cwd / "harvester-demo"
    assert not (home / "harvester.db").exists() and not (home / "data").exists()
    with sqlite3.connect(db) as connection:
        (stored,) = connection.execute(
            "SELECT count(*) FROM images WHERE state = 'stored'"
        ).fetchone()
    assert stored and len(list(root.rglob("*.jpg"))) == stored, stored

    # The commands it prints name them, quoted as a shell takes them.
    _export_as_suggested(done.stdout, cwd)


async def test_the_summary_counts_failures_and_skips_by_reason_code_not_by_message(
    sqlite_engine: AsyncEngine,
):
    outcomes = {
        "a": ("failed", "not_an_image", "http://a/1.jpg: got text/html"),
        "b": ("failed", "not_an_image", "http://b/2.jpg: got text/html"),
        "c": ("failed", "too_large", "http://a/3.jpg: over 50 MB"),
        "d": ("failed", None, "worker lost"),
        "e": ("skipped", "duplicate", "identical bytes already stored as image 1"),
        "f": ("stored", None, None),
    }
    for campaign in ("one", "two"):  # every campaign counts, tasks do not
        campaign_id = await ensure_campaign(sqlite_engine, campaign, "urls", {})
        found = [FoundImage(f"{campaign}:{n}", campaign, f"{n}.jpg", None) for n in outcomes]
        await add_images(
            sqlite_engine, campaign_id, "urls", "list", found, max_attempts=MAX_ATTEMPTS
        )
    async with sqlite_engine.begin() as connection:
        for name, (state, reason, message) in outcomes.items():
            await connection.execute(
                update(Image)
                .where(Image.provider_id.like(f"%:{name}"))
                .values(state=state, reason=reason, last_error=message)
            )
    assert await why_not_stored(sqlite_engine) == [
        "  failed 8: not_an_image 4, too_large 2, unknown 2",
        "  skipped 2: duplicate 2",
    ]


async def test_the_demo_queues_its_rows_with_the_settings_max_attempts(
    sqlite_engine: AsyncEngine, emulator: RunningEmulator, tmp_path: Path
):
    for submit in SUBMITTERS:
        await submit(sqlite_engine, emulator, tmp_path, 7)
    async with sqlite_engine.connect() as connection:
        for model in (Task, Image):
            found = await connection.scalars(select(model.max_attempts).distinct())
            assert list(found) == [7], model.__tablename__
