"""The loopback static file server the corpus is fetched from.

nginx when it is installed (sendfile, one process, ~0.2 ms of CPU an image here), else
aiohttp in a child process (~1 ms an image). It runs on the same cores as the tool being
measured, as no real image server does, so the lighter one is used when it can be:
`BENCH_SERVER=aiohttp` forces the other. Both tools fetch the same files from it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
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


NGINX_CONF = """daemon off; master_process off; worker_processes 1;
pid {dir}/nginx.pid; error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000;
  client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi; uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
  types {{ image/jpeg jpg; image/png png; image/webp webp; }}
  server {{ listen 127.0.0.1:{port} backlog=1024; root {root}; }}
}}
"""


class ServerProcess:
    """`with ServerProcess(root) as base_url:` — the server in a process of its own."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        wanted = os.environ.get("BENCH_SERVER", "")
        self.kind = wanted or ("nginx" if shutil.which("nginx") else "aiohttp")
        self.proc: subprocess.Popen[str] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> str:
        return self._nginx() if self.kind == "nginx" else self._aiohttp()

    def cpu_s(self) -> float:
        """The server's CPU so far (user + system)."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _aiohttp(self) -> str:
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

    def _nginx(self) -> str:
        self._dir = tempfile.TemporaryDirectory(prefix="bench-nginx-")
        with socket.socket() as probe:  # a free port: nginx cannot report one it picked
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        conf = Path(self._dir.name) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=self._dir.name, port=port, root=self.root))
        nginx = shutil.which("nginx") or "nginx"
        self.proc = subprocess.Popen(
            [nginx, "-c", str(conf), "-p", self._dir.name], stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                assert self.proc.stderr is not None
                raise RuntimeError(f"nginx did not start: {self.proc.stderr.read().strip()}")
            with socket.socket() as client:
                if client.connect_ex(("127.0.0.1", port)) == 0:
                    return f"http://127.0.0.1:{port}"
            time.sleep(0.05)
        self.proc.kill()
        raise RuntimeError("nginx did not listen within 10 s")

    def __exit__(self, *_: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        if self._dir is not None:
            self._dir.cleanup()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_main(Path(sys.argv[1])))
