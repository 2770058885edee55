"""The image CDN under /cdn/: Flickr sizes, signed Mapillary thumbnails, URL-list images.

Rendering costs tens of milliseconds, so bytes are cached per picture (one URL
always names one recipe; LRU, bounded in bytes), renders run off the event
loop, and concurrent requests for one picture share a single render. With
`image_variety` set, pictures of one shape repeat every N seeds, so a benchmark
measures the harvester rather than the emulator's renderer.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
from collections import OrderedDict
from dataclasses import replace

from aiohttp import web

from harvester.emulator.clock import EmulatorClock
from harvester.emulator.config import INLINE, MEDIUMS_DATED, PLACEHOLDER
from harvester.emulator.deleted import PLACEHOLDER_PATH, Deletions, placeholder_png
from harvester.emulator.images import ImageRecipe, hostile, render
from harvester.emulator.stats import mark
from harvester.emulator.world import World

MAPILLARY_SIZES: dict[str, int | None] = {
    "thumb_256": 256,
    "thumb_1024": 1024,
    "thumb_2048": 2048,
    "thumb_original": None,
}
# Flickr's sizes over Large (1024 px) by their longest side: refused to free accounts' photos.
LARGE_EDGE = 1024
_OVER_LARGE = {"h": 1600, "k": 2048, "o": 10**9}
_FLICKR_NAME = re.compile(r"^(\d+)_([0-9a-f]+)_([mnwzcbhko])\.(jpg|png|gif)$")
_WEB_NAME = re.compile(r"^([wc])(\d{7})\.(jpg|png)$")
_CONTENT_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
}


class UrlSigner:
    """Signs Mapillary thumbnail URLs with an expiry, like the real fbcdn `oh`/`oe` pair."""

    def __init__(self, seed: int, clock: EmulatorClock, ttl_s: float) -> None:
        self._key = hashlib.sha256(f"emulator-cdn-{seed}".encode()).digest()
        self.clock = clock
        self.ttl_s = ttl_s

    def _mac(self, path: str, expires: int) -> str:
        msg = f"{path}:{expires:x}".encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()[:32]

    def sign(self, base_url: str, path: str) -> str:
        expires = int(self.clock.now() + self.ttl_s)
        return f"{base_url}{path}?stp=dst-jpg&oh={self._mac(path, expires)}&oe={expires:X}"

    def check(self, path: str, oh: str, oe: str) -> str | None:
        """None when valid, else the reason the real CDN gives with its 403."""
        try:
            expires = int(oe, 16)
        except ValueError:
            return "Bad URL timestamp"
        if not hmac.compare_digest(self._mac(path, expires), oh):
            return "Bad URL hash"
        if self.clock.now() > expires:
            return "URL signature expired"
        return None


class RenderCache:
    """LRU of rendered bodies by URL path, bounded in bytes, with shared in-flight renders."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[ImageRecipe, tuple[bytes, str]] = OrderedDict()
        self._bytes = 0
        self._pending: dict[ImageRecipe, asyncio.Future[tuple[bytes, str]]] = {}
        self.renders = 0

    async def get(self, recipe: ImageRecipe) -> tuple[bytes, str]:
        key = recipe
        hit = self._items.get(key)
        if hit is not None:
            self._items.move_to_end(key)
            return hit
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[bytes, str]] = loop.create_future()
        self._pending[key] = future
        try:
            body = await loop.run_in_executor(None, render, recipe)
            item = (body, _CONTENT_TYPES.get(recipe.fmt, "image/jpeg"))
            self.renders += 1
            self._store(key, item)
            future.set_result(item)
            return item
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # marked retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._pending[key]

    def _store(self, key: ImageRecipe, item: tuple[bytes, str]) -> None:
        size = len(item[0])
        if size > self.max_bytes:
            return
        self._items[key] = item
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, (old, _) = self._items.popitem(last=False)
            self._bytes -= len(old)


class Cdn:
    """aiohttp handlers for /cdn/... ."""

    def __init__(
        self,
        world: World,
        signer: UrlSigner,
        cache: RenderCache,
        variety: int | None = None,
        deletions: Deletions | None = None,
        deleted_answer: str = PLACEHOLDER,
        mediums: str = MEDIUMS_DATED,
        placeholder_url: str | None = None,
        free_account_share: float = 0.0,
    ) -> None:
        self.world = world
        self.signer = signer
        self.cache = cache
        self.variety = variety
        self.deletions = deletions or Deletions(world.seed, 0.0)
        self.deleted_answer = deleted_answer
        self.mediums = mediums
        self.placeholder_url = placeholder_url or PLACEHOLDER_PATH
        self.free_account_share = free_account_share

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(PLACEHOLDER_PATH, self.placeholder),
            web.get("/cdn/flickr/{server}/{name}", self.flickr),
            web.get("/cdn/mapillary/{size}/{name}", self.mapillary),
            web.get("/cdn/web/{name}", self.web),
        ]

    async def _image(self, request: web.Request, recipe: ImageRecipe) -> web.Response:
        if self.variety:
            recipe = replace(recipe, seed=recipe.seed % self.variety)
        body, ctype = await self.cache.get(recipe)
        return web.Response(
            body=body, content_type=ctype, headers={"Cache-Control": "max-age=315360000"}
        )

    async def flickr(self, request: web.Request) -> web.Response:
        match = _FLICKR_NAME.match(request.match_info["name"])
        photo = self.world.flickr_by_id.get(match.group(1)) if match else None
        if match is None or photo is None or photo.server != request.match_info["server"]:
            return _not_found()
        _, secret, size, ext = match.groups()
        if size != "o" and (
            size not in photo.sizes(self.mediums)
            or secret != photo.size_secret(size)
            or ext != "jpg"
        ):
            return _not_found()
        if size == "o" and (secret != photo.originalsecret or ext != photo.originalformat):
            return _not_found()
        if self.deletions.flickr(photo.id):
            # Deleted or made private since search indexed it: the real CDN redirects.
            mark(request, "deleted")
            if self.deleted_answer == INLINE:
                return await self.placeholder(request)
            if self.deleted_answer != PLACEHOLDER:
                return web.Response(status=int(self.deleted_answer), text="Not Found")
            return web.Response(status=302, headers={"Location": self.placeholder_url})
        over_large = size in _OVER_LARGE and max(photo.dims_at(_OVER_LARGE[size])) > LARGE_EDGE
        if over_large and self._free_account(photo.owner):
            mark(request, "free_account")
            return web.Response(status=403, text="Forbidden", content_type="text/plain")
        return await self._image(request, self.world.flickr_recipe(photo, size))

    def _free_account(self, owner: str) -> bool:
        """Whether the owner is on a free account (a seeded coin per owner)."""
        if self.free_account_share <= 0:
            return False
        key = f"{self.world.seed}:free:{owner}".encode()
        coin = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2**64
        return coin < self.free_account_share

    async def placeholder(self, request: web.Request) -> web.Response:
        return web.Response(body=placeholder_png(), content_type="image/png")

    async def mapillary(self, request: web.Request) -> web.Response:
        size = request.match_info["size"]
        image_id = request.match_info["name"].removesuffix(".jpg")
        image = self.world.mapillary.by_id.get(image_id)
        if size not in MAPILLARY_SIZES or image is None or self.deletions.mapillary(image_id):
            return _not_found()
        refusal = self.signer.check(
            request.path, request.query.get("oh", ""), request.query.get("oe", "")
        )
        if refusal is not None:
            return web.Response(status=403, text=refusal, content_type="text/plain")
        return await self._image(request, self.world.mapillary_recipe(image, MAPILLARY_SIZES[size]))

    async def web(self, request: web.Request) -> web.Response:
        match = _WEB_NAME.match(request.match_info["name"])
        if match is None:
            return _not_found()
        item = self.world.web_image(int(match.group(2)), hostile=match.group(1) == "w")
        if item.recipe is not None:
            return await self._image(request, item.recipe)
        if item.kind == "not_found":
            return _not_found()
        body, ctype = hostile(item.kind, item.index)
        return web.Response(body=body, headers={"Content-Type": ctype})


def _not_found() -> web.Response:
    return web.Response(status=404, text="404 Not Found", content_type="text/plain")
