"""The operator dashboard at `/`: one page rendered on the server from the tables alone.

No JavaScript and nothing needed from a CDN (download servers are often offline): bars, the
throughput chart and the coverage map are inline SVG and CSS; map tiles, when configured, are
images under the points that an offline browser simply fails to load. The page reloads itself,
fits a phone, and shows no secret: source links and messages pass through the redactor.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.campaigns import list_campaigns
from harvester.db.counts import CampaignStatus, campaign_counts
from harvester.db.dashboard import RATE_WINDOW, Holder, Overview, overview
from harvester.db.exports import stored_images
from harvester.db.reports import Counted, per_query
from harvester.exporters.figures import FigureData, figure_data
from harvester.log import redactor
from harvester.redact import redact_url
from harvester.web.actions import add_action_routes, usable
from harvester.web.figures import CSS as FIGURES_CSS
from harvester.web.figures import SAMPLE, campaign_figures
from harvester.web.tiles import MAP_WIDTH, TILE_CREDIT, MapView, tile_url

REFRESH_S = 15
FINISHED = ("stored", "skipped", "failed")

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;padding:12px;background:#f6f7f9;color:#222}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:18px 0 6px}
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px;margin-bottom:12px;
overflow-x:auto}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px 6px;
border-bottom:1px solid #eee;vertical-align:top}td.n,th.n{text-align:right;white-space:nowrap}
.bar{background:#e4e7eb;border-radius:3px;height:12px;min-width:80px;display:flex;overflow:hidden}
.bar span{display:block;height:100%}.stored{background:#2e7d32}.skipped{background:#f9a825}
.failed{background:#c62828}.muted{color:#777}.msg{font-family:monospace;font-size:12px;
word-break:break-all}svg{max-width:100%;height:auto;display:block}
.done{background:#e8f5e9;border:1px solid #a5d6a7;padding:6px;border-radius:4px}
form.act{display:flex;gap:4px;flex-wrap:wrap}form.act input{width:7em}
@media (max-width:600px){body{padding:6px}td,th{padding:3px}.wide{display:none}}
"""


@dataclass(frozen=True)
class Controls:
    """What the campaigns table needs besides counts: pauses, and whether buttons show."""

    paused: dict[str, str | None]  # campaign name -> pause reason
    actions: bool = False
    done: str | None = None  # what the last action did


def render(
    campaigns: Sequence[CampaignStatus],
    view: Overview,
    lease_seconds: float,
    controls: Controls | None = None,
    figures: Sequence[FigureData] = (),
    tiles: str | None = None,
) -> str:
    """The page; ``tiles`` is a slippy-map URL template ({z}/{x}/{y}) for under the map."""
    controls = controls or Controls({})
    mode = "actions need the token" if controls.actions else "read-only"
    done = f"<p class=done>{_e(controls.done)}</p>" if controls.done else ""
    body = "".join(
        [
            f"<h1>harvester</h1><p class=muted>as of {_time(view.now)} UTC, "
            f"refreshes every {REFRESH_S} s, {mode}</p>{done}",
            _campaigns(campaigns, view, controls),
            _throughput(view.per_minute),
            _reasons(view),
            _daemons(view.holders, view.now, lease_seconds),
            _coverage(view.points, view.stored_with_position, tiles),
            _figures(figures),
            _failures(view),
        ]
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f'<meta http-equiv=refresh content="{REFRESH_S}">'
        f"<title>harvester dashboard</title><style>{CSS}{FIGURES_CSS}</style></head>"
        f"<body>{body}</body></html>"
    )


def _campaigns(campaigns: Sequence[CampaignStatus], view: Overview, controls: Controls) -> str:
    if not campaigns:
        return "<section><h2>Campaigns</h2><p>No campaigns yet: `harvester submit`.</p></section>"
    rows = []
    for c in campaigns:
        total = sum(c.images.values())
        counts = {s: c.images.get(s, 0) for s in (*FINISHED, "queued", "running")}
        done = sum(counts[s] for s in FINISHED)
        per_min = view.recent_by_campaign.get(c.name, 0) / 15
        left = counts["queued"] + counts["running"]
        queries_left = sum(
            n
            for states in c.tasks.values()
            for s, n in states.items()
            if s in ("queued", "running")
        )
        paused = c.name in controls.paused
        state = f"paused: {controls.paused[c.name]}" if paused else c.provider
        rows.append(
            f"<tr><td>{_e(c.name)}<div class=muted>{_e(state)}</div></td>"
            f"<td>{_bar(counts, total)}<div class=muted>{done} of {total} "
            f"({_pct(done, total)})</div></td>"
            + "".join(f"<td class=n>{counts[s]}</td>" for s in ("stored", "skipped", "failed"))
            + f"<td class='n wide'>{left}</td><td class=n>{per_min:.1f}/min</td>"
            f"<td class=n>{_eta(left, per_min, queries_left)}</td>"
            + (_buttons(c.name, paused) if controls.actions else "")
            + "</tr>"
        )
    head = (
        "<tr><th>campaign</th><th>progress</th><th class=n>stored</th><th class=n>skipped</th>"
        "<th class=n>failed</th><th class='n wide'>left</th><th class=n>rate (15 min)</th>"
        "<th class=n>ETA</th>" + ("<th>actions</th>" if controls.actions else "") + "</tr>"
    )
    return f"<section><h2>Campaigns</h2><table>{head}{''.join(rows)}</table></section>"


def _buttons(name: str, paused: bool) -> str:
    """One form per campaign; the token is typed by the operator, never put in the page."""
    toggle = "resume" if paused else "pause"
    return (
        "<td><form method=post action=/actions class=act>"
        f"<input type=hidden name=campaign value='{_e(name)}'>"
        "<input type=password name=token placeholder=token autocomplete=off required>"
        f"<button name=action value={toggle}>{toggle}</button>"
        "<button name=action value=retry>retry failed</button></form></td>"
    )


def _bar(counts: dict[str, int], total: int) -> str:
    spans = "".join(
        f"<span class={s} style='width:{100 * counts[s] / total:.2f}%' title='{s}'></span>"
        for s in FINISHED
        if total and counts[s]
    )
    return f"<div class=bar>{spans}</div>"


def _eta(left: int, per_min: float, queries_left: int) -> str:
    if left == 0 and queries_left == 0:
        return "done"
    if per_min <= 0:
        return "—"
    minutes = left / per_min
    text = f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"
    return f"≥ {text}" if queries_left else text  # queries still to run add images


def _throughput(per_minute: list[int]) -> str:
    width, height, top = 600, 120, max(per_minute) or 1
    step = width / len(per_minute)
    bars = "".join(
        f"<rect x='{i * step:.1f}' y='{height - n * height / top:.1f}' width='{step - 1:.1f}' "
        f"height='{n * height / top:.1f}' fill='#1565c0'><title>{n}</title></rect>"
        for i, n in enumerate(per_minute)
    )
    total = sum(per_minute)
    return (
        f"<section><h2>Throughput, last hour</h2><p class=muted>{total} images finished, "
        f"{total / 60:.1f} a minute on average, busiest minute {max(per_minute)}</p>"
        f"<svg viewBox='0 0 {width} {height + 14}' role=img aria-label='images per minute'>"
        f"{bars}<text x='0' y='{height + 12}' font-size='10'>-60 min</text>"
        f"<text x='{width}' y='{height + 12}' font-size='10' text-anchor='end'>now</text>"
        "</svg></section>"
    )


def _reasons(view: Overview) -> str:
    if not view.reasons:
        return "<section><h2>Reasons</h2><p>Nothing skipped or failed.</p></section>"
    rows = "".join(
        f"<tr><td>{_e(r.campaign)}</td><td>{_e(r.state)}</td><td><b>{_e(r.reason)}</b></td>"
        f"<td class=n>{r.count}</td><td class=msg>{_link(r.example_url, r.example_id)}<br>"
        f"{_e(_clean(r.example_message))}</td></tr>"
        for r in view.reasons
    )
    head = (
        "<tr><th>campaign</th><th>state</th><th>reason</th><th class=n>rows</th>"
        "<th>example</th></tr>"
    )
    return f"<section><h2>Reasons</h2><table>{head}{rows}</table></section>"


def _daemons(holders: list[Holder], now: datetime, lease_seconds: float) -> str:
    if not holders:
        idle = "No daemon holds a row or finished one lately."
        return f"<section><h2>Daemons</h2><p>{idle}</p></section>"
    rows = []
    for h in holders:
        beat = "—"
        if h.lease_expires_at is not None:
            # A heartbeat sets the lease to expire lease_seconds later.
            ago = (now - h.lease_expires_at).total_seconds() + lease_seconds
            beat = f"{max(ago, 0):.0f} s ago"
        rate = h.finished_recently / (RATE_WINDOW.total_seconds() / 60)
        rows.append(f"<tr><td class=msg>{_e(h.owner)}</td><td class=n>{h.rows}</td>"
                    f"<td class=n>{beat}</td><td class=n>{rate:.1f}/min</td></tr>")  # fmt: skip
    head = (
        "<tr><th>lease owner</th><th class=n>rows held</th><th class=n>last heartbeat</th>"
        "<th class=n>rate (5 min)</th></tr>"
    )
    return f"<section><h2>Daemons</h2><table>{head}{''.join(rows)}</table></section>"


def _coverage(points: list[tuple[float, float]], total: int, tiles: str | None) -> str:
    if not points:
        return "<section><h2>Coverage</h2><p>No stored image has a position yet.</p></section>"
    lats, lons = [p[0] for p in points], [p[1] for p in points]
    view = MapView.around(min(lats), max(lats), min(lons), max(lons))
    dots = "".join(
        "<circle cx='{:.1f}' cy='{:.1f}' r='1.6'/>".format(*view.xy(lat, lon))
        for lat, lon in points
    )
    shown = f"newest {len(points)} of {total}" if total > len(points) else f"all {total}"
    layer, credit = "", ""
    if tiles is not None:
        layer = f"<g class=tiles>{''.join(_tile_images(view, tiles))}</g>"
        credit = f" Map tiles (when the browser is online): {TILE_CREDIT}."
    return (
        f"<section><h2>Coverage</h2><p class=muted>{shown} stored images with a position; "
        f"lat {min(lats):.3f} to {max(lats):.3f}, lon {min(lons):.3f} to {max(lons):.3f}."
        f"{credit}</p>"
        f"<svg viewBox='0 0 {MAP_WIDTH} {view.height:.0f}' role=img "
        "aria-label='stored images on a map'>"
        f"<rect width='{MAP_WIDTH}' height='{view.height:.0f}' fill='#eef3f8'/>{layer}"
        f"<g fill='#c62828' fill-opacity='0.6'>{dots}</g></svg></section>"
    )


def _tile_images(view: MapView, template: str) -> list[str]:
    """The slippy-map tiles under the view, as SVG images: a browser that is offline fails
    to load them and shows the plain points, with nothing else on the page depending on them."""
    zoom, tiles = view.tiles()
    images = []
    for x, y in tiles:
        left, top, size = view.tile_box(zoom, x, y)
        href = _e(tile_url(template, zoom, x, y))
        images.append(
            f"<image href='{href}' x='{left:.1f}' y='{top:.1f}' "
            f"width='{size:.1f}' height='{size:.1f}'/>"
        )
    return images


def _figures(figures: Sequence[FigureData]) -> str:
    """The report's figures per campaign (`harvester report`), the first one unfolded."""
    if not figures:
        return ""
    panels = "".join(campaign_figures(data, i == 0) for i, data in enumerate(figures))
    return f"<section><h2>Figures</h2>{panels}</section>"


async def campaign_figure_data(
    engine: AsyncEngine, campaigns: Sequence[CampaignStatus], view: Overview
) -> list[FigureData]:
    """Each campaign's figure data: outcomes from the counts the page already has, queries
    counted over its rows, the image figures from its newest SAMPLE stored images."""
    ids = {c.name: c.id for c in await list_campaigns(engine)}
    found = []
    for campaign in campaigns:
        stored = campaign.images.get("stored", 0)
        counted = [Counted("", "stored", stored)] if stored else []
        counted += [
            Counted(r.reason, r.state, r.count) for r in view.reasons if r.campaign == campaign.name
        ]
        images = await stored_images(engine, [ids[campaign.name]], newest=SAMPLE)
        queries = await per_query(engine, ids[campaign.name])
        found.append(figure_data(campaign.name, images, counted, queries))
    return found


def _failures(view: Overview) -> str:
    if not view.failures:
        return "<section><h2>Recent failures</h2><p>None.</p></section>"
    rows = "".join(
        f"<tr><td class=n>{_time(f.finished_at)}</td><td>{_e(f.campaign)}</td>"
        f"<td><b>{_e(f.reason or '')}</b></td><td class=msg>{_link(f.source_url, f.provider_id)}"
        f"<br>{_e(_clean(f.message))}</td></tr>"
        for f in view.failures
    )
    head = "<tr><th class=n>when</th><th>campaign</th><th>reason</th><th>image</th></tr>"
    return f"<section><h2>Recent failures</h2><table>{head}{rows}</table></section>"


def _link(url: str | None, label: str) -> str:
    if not url:
        return _e(label)
    shown = redact_url(url)
    if not shown.startswith(("http://", "https://")):
        return _e(label)
    return f"<a href='{_e(shown)}' rel=noreferrer>{_e(label)}</a>"


def _clean(message: str | None) -> str:
    return redactor.redact(message or "")[:300]


def _pct(done: int, total: int) -> str:
    return f"{100 * done / total:.1f}%" if total else "—"


def _time(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") if at else "—"


# The page runs no script: should a stranger's text ever slip past the escaping, the browser
# still refuses to run it. Styles are inline, map tiles come from the tile server, buttons
# post back here.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src * data:;"
    " form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def add_dashboard_routes(
    app: web.Application,
    engine: AsyncEngine,
    lease_seconds: float,
    *,
    token: SecretStr | None = None,
    tiles: str | None = None,
) -> None:
    """The page at `/`; with a (non-empty) token, also its buttons' POST /actions; with a
    tile URL template, map tiles under the coverage map."""
    token = usable(token)
    if token is not None:
        add_action_routes(app, engine, token)

    async def dashboard(request: web.Request) -> web.Response:
        paused = {c.name: c.paused_reason for c in await list_campaigns(engine) if c.paused_at}
        controls = Controls(paused, token is not None, request.query.get("done"))
        campaigns, view = await campaign_counts(engine), await overview(engine)
        figures = await campaign_figure_data(engine, campaigns, view)
        page = render(campaigns, view, lease_seconds, controls, figures, tiles)
        response = web.Response(text=page, content_type="text/html", charset="utf-8")
        response.headers.update(PAGE_HEADERS)
        return response

    app.router.add_get("/", dashboard)
