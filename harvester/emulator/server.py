"""Assembles the emulator app, runs it in-process or as `harvester emulator`.

The app plays the outside world for the demo, the tests and the benchmarks:
Flickr REST, the Mapillary Graph API and an image CDN from one seeded world,
plus admin endpoints under /_emulator/ that the real services do not have.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import functools
import io
import signal
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from aiohttp import web

from harvester.emulator.cdn import Cdn, RenderCache, UrlSigner
from harvester.emulator.clock import EmulatorClock
from harvester.emulator.config import (
    BBOX_RULES,
    FLICKR_DELETED_ANSWERS,
    FLICKR_KEY,
    FLICKR_MEDIUMS,
    MAPILLARY_DELETED_ANSWERS,
    MAPILLARY_TOKEN,
    EmulatorConfig,
    Faults,
    Outage,
    Warts,
    WorldSize,
)
from harvester.emulator.deleted import Deletions
from harvester.emulator.faults import (
    Enforcer,
    FaultInjector,
    OutageSchedule,
    TokenBuckets,
    middleware,
)
from harvester.emulator.flickr_api import FlickrRest, SearchEngine
from harvester.emulator.flickr_world import PLACES, SUBJECTS
from harvester.emulator.mapillary_api import MapillaryApi
from harvester.emulator.mapillary_world import DENSE_CENTER, PATH_STARTS
from harvester.emulator.stats import Stats
from harvester.emulator.world import World

FAULT_KNOBS = frozenset(f.name for f in fields(Faults)) - {"scope"}
URL_COLUMNS = ("url", "id", "lat", "lon", "captured_at", "license", "owner", "title")


@functools.lru_cache(maxsize=4)
def build_world(seed: int, size: WorldSize) -> World:
    """Worlds are immutable, so emulators with the same seed share one."""
    return World(seed, size)


@dataclass
class EmulatorState:
    """What the admin endpoints read and change."""

    config: EmulatorConfig
    world: World
    clock: EmulatorClock
    stats: Stats
    cache: RenderCache
    deletions: Deletions


def build_app(
    config: EmulatorConfig, clock: EmulatorClock | None = None
) -> tuple[web.Application, EmulatorState]:
    world = build_world(config.seed, config.world)
    clock = clock or EmulatorClock(speed=config.clock_speed)
    warts = config.warts
    deletions = Deletions(config.seed, warts.deleted_share, warts.mapillary_deleted)
    state = EmulatorState(
        config, world, clock, Stats(), RenderCache(config.cdn_cache_bytes), deletions
    )
    enforcer = Enforcer(
        TokenBuckets(config.flickr_rate_per_s) if config.flickr_rate_per_s else None,
        TokenBuckets(config.mapillary_rate_per_s) if config.mapillary_rate_per_s else None,
    )
    injector = FaultInjector(config.faults, config.seed)
    outages = OutageSchedule(warts.outages, clock)
    app = web.Application(middlewares=[middleware(state.stats, injector, enforcer, warts, outages)])
    signer = UrlSigner(config.seed, clock, config.url_ttl_s)
    engine = SearchEngine(world.flickr, config.seed, warts, clock.now)
    flickr = FlickrRest(engine, config.flickr_keys)
    app.router.add_get("/services/rest/", flickr.handle)
    app.router.add_get("/services/rest", flickr.handle)
    mapillary = MapillaryApi(world, signer, config.mapillary_tokens, warts, deletions)
    app.router.add_routes(mapillary.routes())
    cdn = Cdn(
        world,
        signer,
        state.cache,
        config.image_variety,
        deletions,
        warts.flickr_deleted_answer,
        warts.flickr_mediums,
        warts.flickr_placeholder_url,
        warts.flickr_free_account_share,
    )
    app.router.add_routes(cdn.routes())
    app.router.add_routes(_admin_routes(state))
    return app, state


def _admin_routes(state: EmulatorState) -> list[web.RouteDef]:
    async def stats(_: web.Request) -> web.Response:
        return web.json_response(state.stats.snapshot())

    async def stats_reset(_: web.Request) -> web.Response:
        state.stats.reset()
        return web.json_response({"ok": True})

    async def clock(request: web.Request) -> web.Response:
        try:
            seconds = float(request.query.get("advance", "0"))
        except ValueError:
            return web.json_response({"error": "advance must be a number"}, status=400)
        return web.json_response({"now": state.clock.advance(seconds)})

    async def urls(request: web.Request) -> web.Response:
        n = int(request.query.get("n", "100"))
        hostile = request.query.get("hostile", "1") != "0"
        columns = (
            [*URL_COLUMNS, "expected"] if request.query.get("expected") == "1" else URL_COLUMNS
        )
        base = f"{request.scheme}://{request.host}"
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(state.world.url_list(min(n, 1_000_000), base_url=base, hostile=hostile))
        return web.Response(text=out.getvalue(), content_type="text/csv")

    async def faults(request: web.Request) -> web.Response:
        """Change fault knobs live (a storm, then calm) without restarting."""
        live = state.config.faults
        try:
            for name, raw in request.query.items():
                if name == "scope":
                    live.scope = frozenset(x.strip() for x in raw.split(",") if x.strip())
                elif name in FAULT_KNOBS:
                    setattr(live, name, float(raw))
                else:
                    return web.json_response({"error": f"unknown knob {name}"}, status=400)
        except ValueError:
            return web.json_response({"error": "knobs take numbers"}, status=400)
        return web.json_response({**asdict(live), "scope": sorted(live.scope)})

    async def world(_: web.Request) -> web.Response:
        return web.json_response({**state.world.summary(), "now": state.clock.now()})

    return [
        web.get("/_emulator/stats", stats),
        web.post("/_emulator/stats/reset", stats_reset),
        web.post("/_emulator/clock", clock),
        web.get("/_emulator/urls.csv", urls),
        web.get("/_emulator/world", world),
        web.post("/_emulator/faults", faults),
    ]


@dataclass
class RunningEmulator:
    """A started emulator; `base_url` has no trailing slash."""

    base_url: str
    world: World
    app: web.Application
    runner: web.AppRunner
    state: EmulatorState

    @property
    def flickr_api_url(self) -> str:
        return self.base_url + "/services/rest/"

    @property
    def mapillary_api_url(self) -> str:
        return self.base_url + "/mapillary"

    async def close(self) -> None:
        await self.runner.cleanup()


async def start_emulator(
    config: EmulatorConfig, host: str = "127.0.0.1", port: int = 0
) -> RunningEmulator:
    """Serve the emulator on this event loop (a free port when `port` is 0)."""
    app, state = build_app(config)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:  # a port in use, out of range, a host that is none: nothing left
        await runner.cleanup()
        raise
    bound_port = runner.addresses[0][1]
    # A wildcard bind is reachable on loopback; an IPv6 literal needs brackets in a URL.
    shown = host if host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    if ":" in shown:
        shown = f"[{shown}]"
    return RunningEmulator(f"http://{shown}:{bound_port}", state.world, app, runner, state)


class _DefaultsShown(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a flag's default unless it has none (None, off, empty) or its help names it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        none = action.default is None or action.default is False or action.default == []
        if none or "default" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action) or ""


@dataclass(frozen=True)
class _Flag:
    """One command-line flag: a value (of `kind`, among `choices`), a repeatable value
    (`repeat`: every use is kept, in order) or an on/off `switch`."""

    name: str
    help: str
    default: object = None
    kind: Callable[[str], object] | None = None
    choices: tuple[str, ...] | None = None
    repeat: bool = False
    switch: bool = False

    def options(self) -> dict[str, Any]:
        if self.switch:
            return {"action": "store_true", "help": self.help}
        # A repeatable flag starts each parse from its own empty list (append mutates it).
        options: dict[str, Any] = {
            "help": self.help,
            "default": [] if self.repeat else self.default,
        }
        if self.kind is not None:
            options["type"] = self.kind
        if self.choices is not None:
            options["choices"] = self.choices
        if self.repeat:
            options["action"] = "append"
        return options


_FLAGS = (
    _Flag("--host", "address to listen on", "127.0.0.1"),
    _Flag("--port", "port to listen on (0: any free)", 8900, int),
    _Flag("--seed", "seed of the fake world and its faults", 7, int),
    _Flag("--latency-ms", "added to every answer", 0.0, float),
    _Flag("--error-rate", "share of 5xx answers", 0.0, float),
    _Flag("--rate-429", "share of random 429 answers", 0.0, float),
    _Flag("--retry-after", "Retry-After seconds on 429", 1.0, float),
    _Flag("--reset-rate", "share of reset connections", 0.0, float),
    _Flag("--truncate-rate", "share of cut-short bodies", 0.0, float),
    _Flag("--stall-rate", "share of cut-short bodies on a connection then held open", 0.0, float),
    _Flag("--partial-rate", "share of unasked-for 206 partial bodies", 0.0, float),
    _Flag("--bad-gzip-rate", "share of gzip answers cut short or with a wrong CRC", 0.0, float),
    _Flag("--html-page-rate", "share of API answers that are an HTML page with a 200", 0.0, float),
    _Flag("--fault-scope", "api, cdn or api,cdn", "api,cdn"),
    _Flag("--flickr-rate", "requests/s per key (default: unlimited)", None, float),
    _Flag("--mapillary-rate", "requests/s per token (default: unlimited)", None, float),
    _Flag("--url-ttl", "signed URL lifetime, s", 3600.0, float),
    _Flag(
        "--image-variety",
        "distinct pictures per shape, for benchmarks (default: one per photo)",
        None,
        int,
    ),
    _Flag("--cache-mb", "rendered-image cache size", 256, int),
    _Flag("--flickr-key", f"a valid Flickr key (default {FLICKR_KEY})", repeat=True),
    _Flag("--mapillary-token", f"a valid token (default {MAPILLARY_TOKEN})", repeat=True),
    _Flag("--clock-speed", "emulator s per wall s", 1.0, float),
    _Flag("--deleted-share", "share of deleted photos", 0.0, float),
    _Flag(
        "--blank-total-share",
        "share of Flickr queries first answered total '', pages 0",
        0.0,
        float,
    ),
    _Flag(
        "--empty-page-share",
        "share of Flickr pages before the last first answered empty",
        0.0,
        float,
    ),
    _Flag(
        "--free-account-share",
        "share of Flickr owners on free accounts: their sizes over 1024 px answer 403",
        0.0,
        float,
    ),
    _Flag(
        "--total-overcount",
        "photos a Flickr search total counts that no page lists (the pages past the listed"
        " ones, up to the announced last, answer empty)",
        0,
        int,
    ),
    _Flag(
        "--flickr-deleted",
        "the CDN's answer for a deleted photo",
        Warts.flickr_deleted_answer,
        choices=FLICKR_DELETED_ANSWERS,
    ),
    _Flag(
        "--flickr-placeholder-url",
        "where a deleted photo redirects (default: the emulator's own placeholder)",
    ),
    _Flag("--mapillary-deleted", "a deleted Mapillary image id (repeatable)", repeat=True),
    _Flag(
        "--mapillary-deleted-entity",
        "the entity's answer for a deleted image: a Graph error, a 404, or a bare id",
        Warts.mapillary_deleted_entity,
        choices=MAPILLARY_DELETED_ANSWERS,
    ),
    _Flag(
        "--bbox-rule",
        "how Mapillary judges a bbox: each side under 0.01 degree, or the area",
        Warts.bbox_rule,
        choices=BBOX_RULES,
    ),
    _Flag(
        "--outage", "SERVICE:START_S:DUR_S, an outage (repeatable)", kind=Outage.parse, repeat=True
    ),
    _Flag("--body-rate-limit-rate", "Graph rate limits in 4xx bodies", 0.0, float),
    _Flag("--json-429", "lenient: Flickr 429s as JSON", switch=True),
    _Flag("--plain-mapillary-429", "lenient: bare 429s", switch=True),
    _Flag("--lenient-multiget", "?ids= drops unknown ids", switch=True),
    _Flag("--no-multiget", "?ids= is refused as an unsupported request", switch=True),
    _Flag(
        "--dense-refusal-above",
        "bbox searches over boxes with more images get Graph code 1 (0: never)",
        Warts.dense_refusal_above,
        int,
    ),
    _Flag("--mapillary-page-size", "Graph collections in pages of N with cursors", None, int),
    _Flag(
        "--wild-computed-share",
        "share of reconstructed Mapillary images whose computed position is kilometres off",
        Warts.mapillary_wild_computed_share,
        float,
    ),
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="harvester emulator", description=__doc__, formatter_class=_DefaultsShown
    )
    for flag in _FLAGS:
        p.add_argument(flag.name, **flag.options())
    _flickr_arguments(p)
    return p


def _shares(text: str) -> tuple[float, float, float]:
    """`MONTH,YEAR,CIRCA` shares, e.g. `0.03,0.02,0.01`."""
    try:
        month, year, circa = (float(x) for x in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected MONTH,YEAR,CIRCA shares, got {text!r}") from exc
    return month, year, circa


def _flickr_arguments(p: argparse.ArgumentParser) -> None:
    world = WorldSize()
    p.add_argument(
        "--granularity-mix",
        type=_shares,
        default=",".join(map(str, world.flickr_taken_granularity)),
        help="MONTH,YEAR,CIRCA: shares of Flickr photos whose datetaken is known only to the "
        "month (granularity 4), the year (6) or circa (8)",
    )
    p.add_argument(
        "--gif-share",
        type=float,
        default=world.flickr_gif_share,
        help="share of Flickr originals that are GIFs (their sizes are JPEGs)",
    )
    p.add_argument(
        "--hidden-original-share",
        type=float,
        default=world.flickr_hidden_original_share,
        help="share of Flickr photos without a Large that hide their original too",
    )
    p.add_argument(
        "--linked-description-share",
        type=float,
        default=world.flickr_linked_description_share,
        help="share of Flickr descriptions quoting a signed link (a token in its query)",
    )
    p.add_argument(
        "--flickr-mediums",
        choices=FLICKR_MEDIUMS,
        default=Warts.flickr_mediums,
        help="which Medium/Small sizes search offers: dated (url_c only since 2012-03-01), "
        "all, or none",
    )
    p.add_argument(
        "--total-as-number", action="store_true", help="lenient: Flickr's total as a number"
    )
    p.add_argument(
        "--empty-past-last-page",
        action="store_true",
        help="lenient: a page past the last one is empty instead of the last page again",
    )
    p.add_argument(
        "--flickr-down-codes",
        type=lambda text: tuple(int(c) for c in text.split(",") if c.strip()),
        default=",".join(map(str, Warts.flickr_down_codes)),  # parsed by type, shown as typed
        help="stat=fail codes Flickr says 'down' with, in turn (201 as an HTTP 400)",
    )
    p.add_argument(
        "--geo-without-limit",
        action="store_true",
        help="lenient: a geo search with no tag or min date is not cut to the last 12 hours",
    )


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    faults = Faults(
        latency_ms=args.latency_ms,
        error_5xx_rate=args.error_rate,
        rate_429=args.rate_429,
        retry_after_s=args.retry_after,
        reset_rate=args.reset_rate,
        truncate_rate=args.truncate_rate,
        stall_rate=args.stall_rate,
        partial_rate=args.partial_rate,
        html_page_rate=args.html_page_rate,
        bad_gzip_rate=args.bad_gzip_rate,
        body_rate_limit_rate=args.body_rate_limit_rate,
        scope=frozenset(s.strip() for s in args.fault_scope.split(",") if s.strip()),
    )
    warts = Warts(
        deleted_share=args.deleted_share,
        flickr_deleted_answer=args.flickr_deleted,
        flickr_placeholder_url=args.flickr_placeholder_url,
        mapillary_deleted=frozenset(args.mapillary_deleted),
        mapillary_deleted_entity=args.mapillary_deleted_entity,
        bbox_rule=args.bbox_rule,
        flickr_429_html=not args.json_429,
        mapillary_limit_in_body=not args.plain_mapillary_429,
        multiget_drops_unknown=args.lenient_multiget,
        mapillary_multiget=not args.no_multiget,
        dense_refusal_above=args.dense_refusal_above or None,
        mapillary_page_size=args.mapillary_page_size,
        mapillary_wild_computed_share=args.wild_computed_share,
        outages=tuple(args.outage),
        flickr_mediums=args.flickr_mediums,
        flickr_total_as_string=not args.total_as_number,
        flickr_past_last_repeats=not args.empty_past_last_page,
        flickr_geo_recent_only=not args.geo_without_limit,
        flickr_blank_total_share=args.blank_total_share,
        flickr_empty_page_share=args.empty_page_share,
        flickr_total_overcount=args.total_overcount,
        flickr_free_account_share=args.free_account_share,
        flickr_down_codes=args.flickr_down_codes,
    )
    world = WorldSize(
        flickr_taken_granularity=args.granularity_mix,
        flickr_gif_share=args.gif_share,
        flickr_hidden_original_share=args.hidden_original_share,
        flickr_linked_description_share=args.linked_description_share,
    )
    return replace(
        EmulatorConfig(seed=args.seed, faults=faults, warts=warts, url_ttl_s=args.url_ttl),
        flickr_keys=frozenset(args.flickr_key or {FLICKR_KEY}),
        mapillary_tokens=frozenset(args.mapillary_token or {MAPILLARY_TOKEN}),
        clock_speed=args.clock_speed,
        flickr_rate_per_s=args.flickr_rate,
        mapillary_rate_per_s=args.mapillary_rate,
        image_variety=args.image_variety,
        cdn_cache_bytes=args.cache_mb * 1024 * 1024,
        world=world,
    )


async def _serve(config: EmulatorConfig, host: str, port: int) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        running = await start_emulator(config, host, port)
    except (OSError, OverflowError, UnicodeError) as exc:  # in use; past 65535; IDNA's refusal
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        print(f"harvester emulator: cannot listen on {host}:{port}: {why}", file=sys.stderr)
        return 2
    # What to export and what is in the world, on stderr: stdout's one line is the URL, which
    # scripts read (a reader may signal as soon as it sees it, so it comes last).
    print("\n".join(describe(running, config)), file=sys.stderr, flush=True)
    print(running.base_url, flush=True)
    try:
        await stop.wait()
    finally:
        await running.close()
    return 0


def describe(running: RunningEmulator, config: EmulatorConfig) -> list[str]:
    """The settings a harvester needs to use this emulator, and what its fake world holds."""
    world = running.world
    summary = world.summary()
    sequences = sorted(world.mapillary.by_sequence)[:3]
    minlon, minlat = DENSE_CENTER[0] - 0.05, DENSE_CENTER[1] - 0.05
    return [
        f"emulator serving on {running.base_url}; to harvest from it:",
        f"  export HARVESTER_FLICKR_API_URL={running.flickr_api_url}",
        f"  export HARVESTER_MAPILLARY_API_URL={running.mapillary_api_url}",
        f"  export HARVESTER_FLICKR_API_KEY={sorted(config.flickr_keys)[0]}",
        f"  export HARVESTER_MAPILLARY_TOKEN='{sorted(config.mapillary_tokens)[0]}'",
        f"world (seed {summary['seed']}): {summary['flickr_photos']} Flickr photos, "
        f"{summary['mapillary_images']} Mapillary images in "
        f"{summary['mapillary_sequences']} sequences",
        "  Flickr keywords: " + ", ".join(word for word, _ in SUBJECTS),
        "  Flickr places (as tags): " + ", ".join(name for name, _, _ in PLACES),
        "  Mapillary regions: "
        + ", ".join(name for name, _, _ in PATH_STARTS)
        + f"; dense area --bbox {minlon:.4f},{minlat:.4f},{minlon + 0.1:.4f},{minlat + 0.1:.4f}",
        "  Mapillary sequences, e.g.: " + ", ".join(sequences),
        f"  URL lists: {running.base_url}/cdn/web/<n>.jpg (every "
        f"{world.size.hostile_urls_every}th one hostile)",
    ]


def main(argv: list[str] | None = None) -> int:
    """Entry point of `harvester emulator`; serves until SIGINT or SIGTERM."""
    args = _parser().parse_args(argv)
    return asyncio.run(_serve(config_from_args(args), args.host, args.port))


if __name__ == "__main__":
    sys.exit(main())
