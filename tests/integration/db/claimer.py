"""A claimer process for the concurrency test: N workers claim, record, finish until empty."""

from __future__ import annotations

import asyncio
import sys

from harvester.db.models import Task
from harvester.db.queue import Queue
from harvester.db.session import create_engine


async def worker(queue: Queue, owner: str, out: list[str]) -> None:
    idle = 0
    while idle < 3:
        rows = await queue.claim(owner, 25, 300)
        if not rows:
            idle += 1
            await asyncio.sleep(0.05)
            continue
        idle = 0
        out.extend(f"{owner} {row.id} {row.attempts}" for row in rows)
        await queue.done(owner, [row.id for row in rows])


async def main(url: str, name: str, workers: int) -> list[str]:
    engine = create_engine(url)
    queue = Queue(engine, Task)
    out: list[str] = []
    await asyncio.gather(*(worker(queue, f"{name}-{i}", out) for i in range(workers)))
    await engine.dispose()
    return out


if __name__ == "__main__":
    claims = asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    with open(sys.argv[4], "w") as handle:
        handle.write("\n".join(claims) + "\n")
