"""The report's figures on the dashboard, live: one folding panel per campaign, drawn from
`exporters.figures.FigureData` like `harvester report` draws it, but as HTML bars and an
inline SVG map (no JavaScript, no image files, readable on a phone and by a screen reader).

Figures of stored images (coverage, captures, licences, sizes, near-duplicates) come from the
campaign's newest stored images, at most `SAMPLE` (a bounded read on any table); outcomes
and queries are counted over every row."""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Sequence

from harvester.exporters.figures import FigureData

SAMPLE = 2000  # newest stored images a campaign's image figures are drawn from
MOST_ROWS = 12  # bars shown per chart; the rest are summed up in one line
STATES = ("stored", "skipped", "failed")
COLOURS = {"stored": "#2e7d32", "skipped": "#f9a825", "failed": "#c62828"}  # the dashboard's

CSS = """
details.figures{margin:6px 0}details.figures summary{cursor:pointer;font-weight:600}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(280px,1fr));gap:10px}
.chart h3{font-size:14px;margin:8px 0 4px}.chart table td{padding:2px 4px;border:0}
.chart table{table-layout:fixed}.chart td.lab{width:38%;white-space:nowrap;overflow:hidden;
text-overflow:ellipsis}.chart td.b{width:34%}.chart td.n{width:28%}
.hbar{display:inline-block;background:#1565c0;height:10px;border-radius:2px}
"""


def campaign_figures(data: FigureData, open_: bool = False) -> str:
    sampled = data.stored >= SAMPLE
    basis = f"its newest {SAMPLE}" if sampled else f"all its {data.stored}"
    charts = [
        _coverage(data),
        _bars("Captures per month", data.per_month),
        _bars("Licence mix", data.licences),
        _stacked("Images per query", data.queries),
        _stacked("Outcomes by reason", _by_reason(data)),
        _bars("Stored sizes (longer side, px)", _size_bins(data)),
        _near(data),
    ]
    return (
        f"<details class=figures{' open' if open_ else ''}><summary>{_e(data.campaign)}"
        f" <span class=muted>(figures of {basis} stored images)</span></summary>"
        f"<div class=charts>{''.join(charts)}</div></details>"
    )


def _chart(title: str, body: str) -> str:
    return f"<div class=chart><h3>{_e(title)}</h3>{body}</div>"


def _bars(title: str, rows: Sequence[tuple[str, int]]) -> str:
    if not rows:
        return _chart(title, "<p class=muted>nothing yet</p>")
    shown, rest = list(rows[:MOST_ROWS]), rows[MOST_ROWS:]
    top = max(n for _, n in shown) or 1
    lines = "".join(
        f"<tr><td class=lab title='{_e(label)}'>{_e(label)}</td><td class=b><div class=hbar "
        f"style='width:{100 * n / top:.1f}%'></div></td><td class=n>{n}</td></tr>"
        for label, n in shown
    )
    if rest:
        lines += f"<tr><td class=muted>{len(rest)} more</td><td></td>"
        lines += f"<td class=n>{sum(n for _, n in rest)}</td></tr>"
    return _chart(title, f"<table>{lines}</table>")


def _stacked(title: str, rows: Sequence[tuple[str, dict[str, int]]]) -> str:
    """Bars split by state (stored, skipped, failed), with the counts written out."""
    if not rows:
        return _chart(title, "<p class=muted>nothing yet</p>")
    shown = list(rows[:MOST_ROWS])
    top = max(sum(by.values()) for _, by in shown) or 1
    lines = []
    for label, by in shown:
        counts = " ".join(f"{by[s]} {s}" for s in STATES if by.get(s))
        lines.append(
            f"<tr><td class=lab title='{_e(label)}'>{_e(label)}</td>"
            f"<td class=b>{_split_bar(by, top)}</td>"
            f"<td class=n>{_e(counts or '0')}</td></tr>"
        )
    if len(rows) > MOST_ROWS:
        lines.append(f"<tr><td class=muted>{len(rows) - MOST_ROWS} more</td></tr>")
    return _chart(title, f"<table>{''.join(lines)}</table>")


def _split_bar(by: dict[str, int], top: int) -> str:
    """One inline element (its text stays on the row's line), coloured by state in turn."""
    total = sum(by.get(s, 0) for s in STATES) or 1
    stops, start = [], 0.0
    for state in STATES:
        end = start + 100 * by.get(state, 0) / total
        stops.append(f"{COLOURS[state]} {start:.1f}% {end:.1f}%")
        start = end
    width = 100 * sum(by.get(s, 0) for s in STATES) / top
    return (
        f"<span class=hbar style='width:{width:.1f}%;"
        f"background:linear-gradient(to right,{','.join(stops)})'></span>"
    )


def _by_reason(data: FigureData) -> list[tuple[str, dict[str, int]]]:
    rows = [(reason or state, {state: n}) for state, reason, n in data.outcomes if n]
    return sorted(rows, key=lambda row: (-sum(row[1].values()), row[0]))


def _size_bins(data: FigureData) -> list[tuple[str, int]]:
    """Longer sides in 256-pixel bins."""
    longest = [max(w, h) for w, h in zip(data.widths, data.heights, strict=False)]
    bins = Counter(min(side // 256, 15) for side in longest)
    return [(f"{b * 256}-{b * 256 + 255}", bins[b]) for b in sorted(bins)]


def _near(data: FigureData) -> str:
    title = f"Near-duplicate groups (Hamming <= {data.near_distance})"
    if not data.near_groups:
        return _chart(title, "<p>None found.</p>")
    sizes = Counter(data.near_groups)
    summary = f"<p>{len(data.near_groups)} groups, {data.near_duplicates} redundant images</p>"
    rows = [(f"groups of {size}", sizes[size]) for size in sorted(sizes)]
    return _bars(title, rows).replace("</h3>", f"</h3>{summary}", 1)


def _coverage(data: FigureData) -> str:
    """Points on lon/lat; a Mapillary sequence is a track (a polyline in capture order)."""
    every = data.points + [p for track in data.tracks for p in track.points]
    if not every:
        return _chart("Coverage", "<p class=muted>no image has a position</p>")
    lons, lats = [p[0] for p in every], [p[1] for p in every]
    west, east = min(lons), max(lons)
    south, north = min(lats), max(lats)
    pad_x, pad_y = max((east - west) * 0.05, 1e-4), max((north - south) * 0.05, 1e-4)
    west, east, south, north = west - pad_x, east + pad_x, south - pad_y, north + pad_y
    width = 300
    height = max(100.0, min(300.0, width * (north - south) / (east - west)))

    def xy(lon: float, lat: float) -> tuple[float, float]:
        return (lon - west) / (east - west) * width, (north - lat) / (north - south) * height

    dots = "".join("<circle cx='{:.1f}' cy='{:.1f}' r='2'/>".format(*xy(*p)) for p in data.points)
    tracks = "".join(
        "<polyline class=track points='{}'><title>{}</title></polyline>".format(
            " ".join("{:.1f},{:.1f}".format(*xy(*p)) for p in t.points), _e(t.sequence)
        )
        for t in data.tracks
    )
    said = f"{len(data.points)} images as points, {len(data.tracks)} sequences as tracks"
    return _chart(
        "Coverage",
        f"<p class=muted>{said}</p><svg viewBox='0 0 {width} {height:.0f}' role=img "
        f"aria-label='{_e(said)}'><rect width='{width}' height='{height:.0f}' fill='#eef3f8'/>"
        f"<g fill='#c62828' fill-opacity='0.6'>{dots}</g>"
        f"<g fill=none stroke='#1565c0' stroke-width='1.5'>{tracks}</g></svg>",
    )


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)
