"""`report.html` and its PNGs: a campaign's figures, drawn with matplotlib (the plotting
library of the field; its Agg backend needs no display and gives the same PNG for the same
data), embedded in the page as data URIs so the one file opens offline."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot
import matplotlib.pyplot as plt

from harvester.exporters.figures import FigureData
from harvester.exporters.output import ExportFolder

Axes = Any
STATE_COLOURS = {"stored": "#2e7d32", "skipped": "#f9a825", "failed": "#c62828"}
_PNG_META = {"Software": None}  # no matplotlib version in the file: same data, same bytes


def _png(draw: Callable[[Axes], None], size: tuple[float, float] = (7.0, 4.0)) -> bytes:
    # Labels are drawn as typed: a licence name or query holding `$...$` would be read as
    # mathtext, drawn as a formula or, malformed (`$\foo{$`), fail the whole report.
    with plt.rc_context({"text.parse_math": False}):
        figure, axes = plt.subplots(figsize=size, dpi=100)
        try:
            draw(axes)
            figure.tight_layout()
            out = io.BytesIO()
            figure.savefig(out, format="png", metadata=_PNG_META)
            return out.getvalue()
        finally:
            plt.close(figure)


def _empty(axes: Axes, text: str) -> None:
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes)
    axes.set_axis_off()


def _coverage(data: FigureData) -> Callable[[Axes], None]:
    def draw(axes: Axes) -> None:
        if not data.points and not data.tracks:
            return _empty(axes, "no image has a position")
        if data.points:
            lon, lat = zip(*data.points, strict=True)
            axes.scatter(lon, lat, s=6, alpha=0.6, label=f"{len(data.points)} images")
        for track in data.tracks:
            lon, lat = zip(*track.points, strict=True)
            axes.plot(lon, lat, marker=".", markersize=3, linewidth=1)
        if data.tracks:
            axes.plot([], [], color="grey", label=f"{len(data.tracks)} sequences (tracks)")
        axes.set_xlabel("longitude")
        axes.set_ylabel("latitude")
        axes.set_aspect("equal", adjustable="datalim")
        axes.legend(loc="best", fontsize=8)
        axes.set_title("Coverage")
        return None

    return draw


def _bars(
    labels: list[str], values: list[int], title: str, horizontal: bool = False
) -> Callable[[Axes], None]:
    def draw(axes: Axes) -> None:
        if not values:
            return _empty(axes, f"{title}: nothing yet")
        if horizontal:
            axes.barh(labels[::-1], values[::-1])
        else:
            axes.bar(labels, values)
            axes.tick_params(axis="x", labelrotation=60, labelsize=7)
        axes.set_title(title)
        return None

    return draw


def _outcomes(data: FigureData) -> Callable[[Axes], None]:
    def draw(axes: Axes) -> None:
        if not data.outcomes:
            return _empty(axes, "no image rows")
        labels = [f"{state}: {reason or '-'}" for state, reason, _ in data.outcomes]
        values = [n for _, _, n in data.outcomes]
        colours = [STATE_COLOURS.get(state, "#607d8b") for state, _, _ in data.outcomes]
        axes.barh(labels[::-1], values[::-1], color=colours[::-1])
        axes.set_title("Images by outcome and reason")
        return None

    return draw


def _queries(data: FigureData) -> Callable[[Axes], None]:
    def draw(axes: Axes) -> None:
        shown = data.queries[:20]
        if not shown:
            return _empty(axes, "no query found anything yet")
        labels = [query[:40] for query, _ in shown][::-1]
        left = [0] * len(labels)
        for state, colour in STATE_COLOURS.items():
            values = [counts.get(state, 0) for _, counts in shown][::-1]
            axes.barh(labels, values, left=left, color=colour, label=state)
            left = [a + b for a, b in zip(left, values, strict=True)]
        axes.legend(fontsize=8)
        axes.set_title("Images per query" + (" (top 20)" if len(data.queries) > 20 else ""))
        return None

    return draw


def _sizes(data: FigureData) -> Callable[[Axes], None]:
    def draw(axes: Axes) -> None:
        if not data.kilobytes:
            return _empty(axes, "no stored image")
        axes.hist(data.kilobytes, bins=30)
        longest = max(max(data.widths, default=0), max(data.heights, default=0))
        axes.set_xlabel(f"file size, KB (longest side up to {longest} px)")
        axes.set_ylabel("images")
        axes.set_title("Stored image sizes")
        return None

    return draw


def _near(data: FigureData) -> Callable[[Axes], None]:
    def draw(axes: Axes) -> None:
        if not data.near_groups:
            return _empty(axes, f"no near-duplicates (Hamming <= {data.near_distance})")
        sizes: dict[int, int] = {}
        for size in data.near_groups:
            sizes[size] = sizes.get(size, 0) + 1
        axes.bar([str(s) for s in sorted(sizes)], [sizes[s] for s in sorted(sizes)])
        axes.set_xlabel("images in the group")
        axes.set_ylabel("groups")
        axes.set_title(f"Near-duplicate groups (Hamming <= {data.near_distance})")
        return None

    return draw


def figures(data: FigureData) -> list[tuple[str, str, bytes]]:
    """(file name, caption, PNG) of each figure, in the order the page shows them."""
    months = [m for m, _ in data.per_month]
    licences = [name[:40] for name, _ in data.licences]
    return [
        ("coverage.png", "Where the stored images are (sequences as tracks)",
         _png(_coverage(data), (7.0, 6.0))),
        ("captures.png", "Captures per month",
         _png(_bars(months, [n for _, n in data.per_month], "Captures per month"))),
        ("licences.png", "Licence mix",
         _png(_bars(licences, [n for _, n in data.licences], "Licences", horizontal=True))),
        ("queries.png", "Images per query, by outcome", _png(_queries(data))),
        ("outcomes.png", "Stored, skipped and failed, by reason", _png(_outcomes(data))),
        ("sizes.png", "Stored image sizes", _png(_sizes(data))),
        ("near-duplicates.png", "Near-duplicate groups", _png(_near(data))),
    ]  # fmt: skip


def _summary(data: FigureData) -> list[tuple[str, str]]:
    states: dict[str, int] = {}
    for state, _, n in data.outcomes:
        states[state] = states.get(state, 0) + n
    return [
        ("stored images", str(data.stored)),
        *((f"{state} rows", str(n)) for state, n in sorted(states.items()) if state != "stored"),
        ("sequences", str(len(data.tracks))),
        ("queries", str(len(data.queries))),
        ("licences", str(len(data.licences))),
        (
            "near-duplicate groups",
            f"{len(data.near_groups)} ({data.near_duplicates} redundant images, "
            f"Hamming <= {data.near_distance})",
        ),
    ]


# The page runs no script, and no stranger's text it shows can make it run one.
REPORT_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'"


def report_html(data: FigureData, drawn: list[tuple[str, str, bytes]]) -> str:
    esc = html.escape
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in _summary(data))
    shown = "".join(
        f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,'
        f'{base64.b64encode(png).decode()}"><figcaption>{esc(caption)} '
        f'(<a href="{esc(name)}">{esc(name)}</a>)</figcaption></figure>'
        for name, caption, png in drawn
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv=Content-Security-Policy content="{REPORT_POLICY}">'
        f"<title>Campaign {esc(data.campaign)}: harvest report</title>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        "<style>body{font-family:sans-serif;margin:2em auto;max-width:60em;padding:0 1em}"
        "table{border-collapse:collapse}th,td{text-align:left;padding:.2em 1em .2em 0}"
        "figure{margin:2em 0}img{max-width:100%;height:auto}</style></head><body>"
        f"<h1>Campaign {esc(data.campaign)}</h1><table>{rows}</table>{shown}</body></html>\n"
    )


def write_report(data: FigureData, folder: ExportFolder) -> int:
    drawn = figures(data)
    for name, _, png in drawn:
        folder.write(name, png)
    folder.write("report.html", report_html(data, drawn).encode("utf-8"))
    return len(drawn)
