"""`harvester status --watch` on a terminal: redraws what changed, Ctrl-C ends it cleanly."""

from __future__ import annotations

import asyncio
import os
import pty
import select
import signal
import subprocess
import sys
import time

from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.commands.status import CLEAR
from harvester.db.campaigns import ensure_campaign

PATIENCE_S = 60.0  # a loaded machine starts Python slowly; nothing here waits on a timer


class Terminal:
    """What a process wrote to the pseudo-terminal it has for stdout, read as it comes."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.text = ""

    def read_until(self, done: str, after: int = 0) -> int:
        """Read until `done` appears past offset `after`; returns where it starts."""
        deadline = time.monotonic() + PATIENCE_S
        while (found := self.text.find(done, after)) < 0:
            left = deadline - time.monotonic()
            assert left > 0, f"never saw {done!r} in {self.text[after:]!r}"
            if select.select([self.fd], [], [], left)[0]:
                self.text += os.read(self.fd, 65536).decode(errors="replace")
        return found

    def drain(self) -> None:
        """Read what is left once the process is gone (Linux says EIO at the end)."""
        while select.select([self.fd], [], [], 0)[0]:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.text += chunk.decode(errors="replace")

    def frames(self) -> list[str]:
        """The screens drawn, each starting with a clear."""
        return self.text.split(CLEAR)[1:]


async def test_watch_redraws_a_new_campaign_and_ctrl_c_exits_0_without_a_traceback(
    sqlite_url: str, sqlite_engine: AsyncEngine
):
    await ensure_campaign(sqlite_engine, "first", "urls", {})
    controller, terminal_side = pty.openpty()
    watch = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "harvester.cli", "--database-url", sqlite_url, "status",
        "--watch", "0.2", stdout=terminal_side, stderr=subprocess.PIPE,
    )  # fmt: skip
    os.close(terminal_side)
    screen = Terminal(controller)
    try:
        await asyncio.to_thread(screen.read_until, "first (urls)")
        await ensure_campaign(sqlite_engine, "second", "urls", {})
        await asyncio.to_thread(screen.read_until, "second (urls)")
        watch.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(watch.communicate(), PATIENCE_S)
        screen.drain()
    finally:
        if watch.returncode is None:
            watch.kill()
            await watch.wait()
        os.close(controller)
    assert watch.returncode == 0 and err == b"", err.decode()
    frames = screen.frames()
    assert len(frames) >= 2 and "first (urls)" in frames[0] and "second" not in frames[0]
    assert "first (urls)" in frames[-1] and "second (urls)" in frames[-1]
    # Every screen is drawn whole, the last one (which Ctrl-C left on the terminal) too.
    assert all(f.count(" (urls)  ") == f.count("  rate ") for f in frames)
