"""A loopback static file server for the corpus (aiohttp, sendfile, port 0).

Run in its own process so its CPU is not counted against either tool; both
fetch the same files from it, so it costs them the same.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

from aiohttp import web


async def serve(root: Path, host: str = "127.0.0.1", port: int = 0) -> web.AppRunner:
    """Start serving `root` under `/`; the bound port is in `runner.addresses`."""
    app = web.Application()
    app.router.add_static("/", root, follow_symlinks=False)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    return runner


async def _main(root: Path) -> None:
    runner = await serve(root)
    host, port = runner.addresses[0][:2]
    print(f"http://{host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()


class ServerProcess:
    """`with ServerProcess(root) as base_url:` — the server in a child process."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> str:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.server", str(self.root)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("http://"):
            self.proc.kill()
            raise RuntimeError("the corpus server did not start")
        return line

    def __exit__(self, *_: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_main(Path(sys.argv[1])))
