"""The fork server's one preload: every module its workers need, imported with the cycle
collector paused, then frozen (harvester.loading).

Frozen, those objects are walked by no collection, neither in the server (whose exit
otherwise spent ~0.25 s of CPU collecting them) nor in the workers forked from it, whose
pages stay shared with the server. The collector runs again afterwards, so workers collect.
A module that fails to import is skipped, as multiprocessing skips a failed preload.
"""

from __future__ import annotations

import importlib
from contextlib import suppress

from harvester.loading import collector_paused
from harvester.worker.forkserver import WORKER_MODULES

with collector_paused():
    for _module in WORKER_MODULES:
        with suppress(ImportError):
            importlib.import_module(_module)
