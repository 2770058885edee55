"""Headless Chromium driven over the DevTools protocol: what a person sees on a page."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRE_TOOLS = os.environ.get("HARVESTER_REQUIRE_POSTGRES") == "1"  # CI: nothing skips
# A script a stranger's text might have slipped into a page: True if the page let it run.
INJECT = (
    "(() => { const s = document.createElement('script');"
    " s.textContent = 'window.injectedRan = true'; document.body.appendChild(s);"
    " return window.injectedRan === true; })()"
)


def chromium_or_skip() -> str:
    if CHROMIUM is None:
        message = (
            "chromium is not installed (Debian package `chromium`, scripts/system-packages.txt)"
        )
        if REQUIRE_TOOLS:
            pytest.fail(message + " and HARVESTER_REQUIRE_POSTGRES=1 forbids skipping")
        pytest.skip(message)
    return CHROMIUM


async def look_at(url: str, script: str, *, width: int = 1280, height: int = 900) -> Any:
    """Load `url` in a fresh headless Chromium of the given window size and return what
    `script` (a JavaScript expression) evaluates to once the page has loaded."""
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        # Port 0: Chromium binds a free one and names it in the profile (a port chosen here
        # and bound by Chromium later could be taken in between).
        browser = await asyncio.create_subprocess_exec(
            chromium_or_skip(), "--headless", "--no-sandbox", "--disable-gpu",
            "--remote-debugging-port=0", f"--user-data-dir={profile}",
            f"--window-size={width},{height}", "--no-first-run", "about:blank",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            port = await _debugging_port(Path(profile) / "DevToolsActivePort")
            async with aiohttp.ClientSession() as http:
                socket_url = await _page_socket(http, port)
                async with http.ws_connect(socket_url, max_msg_size=0) as ws:
                    await _send(ws, 1, "Page.enable", {})
                    await _send(ws, 2, "Page.navigate", {"url": url})
                    await _event(ws, "Page.loadEventFired")
                    reply = await _send(ws, 3, "Runtime.evaluate",
                                        {"expression": script, "returnByValue": True})  # fmt: skip
                    result = reply["result"]
                    assert "exceptionDetails" not in result, result
                    return result["result"].get("value")
        finally:
            browser.kill()
            await browser.wait()


async def screenshot(url: str, path: Path, *, width: int = 1280, height: int = 1800) -> None:
    # Chromium's helpers may still write the profile as it exits: a leftover is no failure.
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        shot = await asyncio.create_subprocess_exec(
            chromium_or_skip(), "--headless", "--no-sandbox", "--disable-gpu",
            f"--user-data-dir={profile}", f"--window-size={width},{height}",
            "--hide-scrollbars", f"--screenshot={path}", url,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        await asyncio.wait_for(shot.wait(), 60)


async def _debugging_port(named_in: Path) -> int:
    """The port Chromium took, once it has written it (first line of the file)."""
    async with asyncio.timeout(30):
        while not (line := _first_line(named_in)).isdigit():  # noqa: ASYNC110 - Chromium's file
            await asyncio.sleep(0.1)
    return int(line)


def _first_line(path: Path) -> str:
    """The file's first line once it is whole (its newline written), else ""."""
    try:
        line, newline, _ = path.read_text().partition("\n")
    except FileNotFoundError:
        return ""
    return line if newline else ""


async def _page_socket(http: aiohttp.ClientSession, port: int) -> str:
    async with asyncio.timeout(30):
        while True:
            try:
                async with http.get(f"http://127.0.0.1:{port}/json/list") as response:
                    pages = [t for t in await response.json() if t.get("type") == "page"]
                if pages:
                    return str(pages[0]["webSocketDebuggerUrl"])
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)


async def _event(ws: aiohttp.ClientWebSocketResponse, method: str) -> None:
    async with asyncio.timeout(30):
        while json.loads((await ws.receive()).data).get("method") != method:
            pass


async def _send(
    ws: aiohttp.ClientWebSocketResponse, call_id: int, method: str, params: dict[str, Any]
) -> dict[str, Any]:
    await ws.send_str(json.dumps({"id": call_id, "method": method, "params": params}))
    while True:
        message = json.loads((await ws.receive()).data)
        if message.get("id") == call_id:
            return dict(message)
