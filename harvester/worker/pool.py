"""The CPU side: decode, frame, resize, encode in worker processes, off the event loop."""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from harvester.imaging import Metadata, Processed, SizeRules, process


def process_image(data: bytes, rules: SizeRules, meta: Metadata) -> tuple[Processed, str]:
    """Runs in a pool process; the source hash travels back so duplicates cost no extra pass."""
    return process(data, rules, meta), hashlib.sha256(data).hexdigest()


def _warm_up() -> None:
    # Import the codecs once per process, not on the first image.
    from PIL import Image

    Image.init()


def create_pool(processes: int) -> ProcessPoolExecutor:
    # forkserver: children never inherit the event loop, sockets or database connections.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["harvester.imaging"])
    return ProcessPoolExecutor(max_workers=processes, mp_context=context, initializer=_warm_up)


def kill_pool(pool: ProcessPoolExecutor) -> None:
    """End a pool that may be wedged: a worker killed while writing its result leaves a
    partial message on the shared result pipe, and the executor then waits forever."""
    # _processes is private, but it is the only handle on the workers the executor gives.
    for worker in list((pool._processes or {}).values()):
        worker.kill()
    pool.shutdown(wait=False, cancel_futures=True)


async def close_pool(pool: ProcessPoolExecutor, timeout_s: float = 30.0) -> None:
    """Shut down off the event loop; a pool that will not stop in time is killed."""
    try:
        await asyncio.wait_for(
            asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True), timeout_s
        )
    except TimeoutError:
        kill_pool(pool)
