"""Ctrl-C and TERM for `harvester run`: the first one stops (the drain, or a start given up),
the second exits at once with one line on stderr.

Exiting at once leaves nothing half-written: a transaction not committed is rolled back by
the database; a file is visible only whole (a temp name until its rename, swept at the next
start); the rows this daemon held are taken back by its next start (`leases_recovered`) or by
another daemon once their leases end. The handlers run on the event loop between callbacks,
never inside a write, so no log line is cut in half either.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
from collections.abc import Callable
from typing import NoReturn

import structlog

log = structlog.get_logger("harvester.worker")

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupts:
    """The signals a run has received, and what the first one does (`on_first`)."""

    def __init__(self, on_first: Callable[[], None]) -> None:
        self.received = 0
        self.on_first = on_first

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in SIGNALS:
            loop.add_signal_handler(signum, self._on_signal, signum)

    def _on_signal(self, signum: int) -> None:
        self.received += 1
        if self.received > 1:
            exit_at_once(signum)
        log.info("signal_received", signal=signal.Signals(signum).name)
        self.on_first()


def exit_at_once(signum: int) -> NoReturn:
    # The image workers ignore Ctrl-C and TERM (a drain needs them): they go first, so that
    # nothing they say about the daemon's absence comes after our last line.
    for child in multiprocessing.active_children():
        child.kill()
    name = signal.Signals(signum).name
    line = (
        f"harvester: {name} again, stopped at once; the next start takes back the rows in flight\n"
    )
    os.write(2, line.encode())
    os._exit(128 + signum)
