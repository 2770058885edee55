"""The daemon's (or the dashboard's) HTTP server: one aiohttp app, loopback unless told."""

from __future__ import annotations

from aiohttp import web

from harvester.errors import ConfigError

DEFAULT_HOST = "127.0.0.1"


def parse_bind(bind: str) -> tuple[str, int]:
    """`HOST:PORT`, `:PORT` or `PORT`; a missing host means loopback."""
    host, _, port = bind.rpartition(":")
    if not (port.isascii() and port.isdigit()) or int(port) > 65535:  # "²" is a digit too
        raise ConfigError(f"--http wants HOST:PORT (or PORT for loopback), got {bind!r}")
    return host.strip("[]") or DEFAULT_HOST, int(port)


def url_of(runner: web.AppRunner) -> str:
    """Where a started runner listens, with the port it was given (`--http 0` takes any
    free one: the only bind a caller cannot lose to another process between choosing and
    binding)."""
    host, port = runner.addresses[0][:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def serve(app: web.Application, bind: str) -> web.AppRunner:
    host, port = parse_bind(bind)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except (OSError, UnicodeError) as exc:  # UnicodeError: a name IDNA cannot encode
        await runner.cleanup()
        why = exc.strerror if isinstance(exc, OSError) else f"not a host name ({exc})"
        raise ConfigError(f"cannot serve HTTP on {host}:{port}: {why}") from None
    return runner
