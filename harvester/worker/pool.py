"""The CPU side: decode, frame, resize, encode in worker processes, off the event loop."""

from __future__ import annotations

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
