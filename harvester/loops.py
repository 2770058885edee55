"""Which event loop to run: uvloop where it is installed (faster), else asyncio's own."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # not on every platform; the default loop works, only slower
        return None
    return uvloop.new_event_loop
