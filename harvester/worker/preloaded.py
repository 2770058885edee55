"""The fork server's last import, after every module its workers need (WORKER_MODULES).

It freezes the objects those imports made: the collector no longer walks them, neither in
the server (whose exit otherwise spent ~0.25 s of CPU collecting them) nor in the workers
forked from it, whose full collections skip them and whose pages stay shared with the server.
Then it resumes the collector `preloading` paused: the workers forked from here collect.
"""

from __future__ import annotations

import gc

gc.freeze()
gc.enable()
