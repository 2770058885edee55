"""A process that calls as fast as its slice of one shared limit allows, for the rate test.

Prints "ready" once it starts, and writes one line per admitted call: its wall-clock time
and the slice the caller held then. Stops when its standard input closes.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time

from harvester.db.rate_shares import DatabaseRateShares
from harvester.db.session import create_engine
from harvester.http.shared import SharedRate


async def main(url: str, rate: float, lease: float, out: str) -> None:
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    engine = create_engine(url)
    limiter = SharedRate("test:key", rate, 3, DatabaseRateShares(engine, lease))
    with open(out, "w") as handle:  # noqa: ASYNC230 -- one small file a test reads after
        print("ready", flush=True)
        while not stop.is_set():
            await limiter.acquire()
            handle.write(f"{time.time()} {limiter.slice_rate}\n")
            handle.flush()
    await limiter.close()
    await engine.dispose()


if __name__ == "__main__":
    url, rate, lease, out = sys.argv[1:5]
    asyncio.run(main(url, float(rate), float(lease), out))
