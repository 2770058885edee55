"""The fork server image workers start from, and what it imports before any worker forks.

Workers are forked from a fresh interpreter (multiprocessing's forkserver), never from the
daemon: they inherit no event loop, socket or database connection. Whatever the server
imports first, every worker has without importing it again, so it imports all they need.

This module imports nothing heavy, so the command line can start the server first thing:
the server then imports on one core while the daemon imports and migrates on another.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.context import ForkServerContext

# The pixel path (numpy, Pillow; `harvester.imaging` alone loads neither), OpenCV, which it
# loads lazily, and the fetch side of a worker.
WORKER_MODULES = ("harvester.imaging.pipeline", "cv2", "harvester.worker.fetching")
# The server's one preload: it imports WORKER_MODULES with the collector paused (see there).
PRELOAD = "harvester.worker.preloaded"


def fork_context() -> ForkServerContext:
    """The context workers are started with; its server preloads WORKER_MODULES."""
    context = multiprocessing.get_context("forkserver")
    # Only a server not yet started takes this; one already running preloaded the same.
    context.set_forkserver_preload([PRELOAD])
    return context


def start_fork_server() -> None:
    """Start the server now, without waiting for its imports; the first worker waits.

    It starts with Ctrl-C and TERM ignored (a disposition kept through exec): they are the
    daemon's to handle, and one sent to the process group while the server imports would
    print its traceback or kill it. It still ends when the daemon does (its pipe closes)."""
    fork_context()
    with _ignoring(signal.SIGINT, signal.SIGTERM):
        multiprocessing.forkserver.ensure_running()


@contextmanager
def _ignoring(*signals: signal.Signals) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; the server then keeps the defaults
        return
    # A handler set outside Python reads as None and could not be put back: left alone.
    kept = [number for number in signals if signal.getsignal(number) is not None]
    before = {number: signal.signal(number, signal.SIG_IGN) for number in kept}
    try:
        yield
    finally:
        for number, handler in before.items():
            signal.signal(number, handler)
