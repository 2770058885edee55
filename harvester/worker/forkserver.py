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
from multiprocessing.context import ForkServerContext

# The pixel path (numpy, Pillow; `harvester.imaging` alone loads neither), OpenCV, which it
# loads lazily, and the fetch side of a worker.
WORKER_MODULES = ("harvester.imaging.pipeline", "cv2", "harvester.worker.fetching")
# Imported after them: it freezes what they made (see there).
LAST = "harvester.worker.preloaded"


def fork_context() -> ForkServerContext:
    """The context workers are started with; its server preloads WORKER_MODULES."""
    context = multiprocessing.get_context("forkserver")
    # Only a server not yet started takes this; one already running preloaded the same.
    context.set_forkserver_preload([*WORKER_MODULES, LAST])
    return context


def start_fork_server() -> None:
    """Start the server now, without waiting for its imports; the first worker waits."""
    fork_context()
    multiprocessing.forkserver.ensure_running()
