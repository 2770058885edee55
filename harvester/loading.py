"""Loading modules with the cycle collector paused.

An import makes hundreds of thousands of objects and almost no garbage, yet each few hundred
allocations start a collection that walks them: paused, the daemon's start-up imports cost
~10% less CPU (harvester's, SQLAlchemy's, aiohttp's: ~0.1 s on each of the two processes a
start waits for). What was loaded is then frozen, so later collections skip it too.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cycle collector for the block, then freeze what it made and resume."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
