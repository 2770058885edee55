"""Small client helpers shared by the emulator tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from harvester.emulator import FLICKR_KEY, MAPILLARY_TOKEN, RunningEmulator

FLICKR_EXTRAS = (
    "url_l,url_o,o_dims,geo,license,date_upload,date_taken,owner_name,tags,views,"
    "description,original_format"
)
MLY_TOKEN = MAPILLARY_TOKEN
__all__ = ["FLICKR_EXTRAS", "FLICKR_KEY", "MLY_TOKEN", "Starter", "flickr", "mly_headers"]

Starter = Callable[..., Awaitable[RunningEmulator]]


async def flickr(
    session: aiohttp.ClientSession, emu: RunningEmulator, **params: str
) -> dict[str, Any]:
    """One flickr.photos.search call (JSON, no callback) returning the decoded body."""
    query = {
        "method": "flickr.photos.search",
        "api_key": FLICKR_KEY,
        "format": "json",
        "nojsoncallback": "1",
        **params,
    }
    async with session.get(emu.flickr_api_url, params=query) as resp:
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
        return body


def mly_headers(token: str = MLY_TOKEN) -> dict[str, str]:
    return {"Authorization": f"OAuth {token}"}
