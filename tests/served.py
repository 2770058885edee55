"""Where a daemon started with `--http 127.0.0.1:0` serves, read from its log as it starts:
a port the test chose free and the daemon bound later could be taken in between."""

from __future__ import annotations

import asyncio
import json


async def served_url(stream: asyncio.StreamReader, seen: list[str], limit_s: float = 60) -> str:
    """The daemon's base URL from its `http_serving` line; the lines read are kept in
    `seen` (the rest of its output is the caller's to read)."""
    async with asyncio.timeout(limit_s):  # a bound for a daemon starting on a loaded machine
        while line := (await stream.readline()).decode():
            seen.append(line)
            if '"http_serving"' in line:
                return str(json.loads(line)["url"])
    raise AssertionError(f"the daemon ended before it served HTTP: {''.join(seen)}")
