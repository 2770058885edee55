"""The fork server's first import: the cycle collector stays paused through the imports of
WORKER_MODULES (as in harvester.loading); `preloaded`, the last, freezes and resumes it.

Only the fork server's preload pauses it: imported anywhere else (a test importing every
module), this changes nothing."""

from __future__ import annotations

import gc
import multiprocessing.forkserver
import sys
from types import FrameType


def _imported_by_fork_server() -> bool:
    frame: FrameType | None = sys._getframe()
    while frame is not None:
        if frame.f_code is multiprocessing.forkserver.main.__code__:
            return True
        frame = frame.f_back
    return False


PAUSED = _imported_by_fork_server()
if PAUSED:
    gc.disable()
