"""ATTRIBUTION.md and attribution.csv: the credit a publisher ships with the images."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from urllib.parse import quote

from harvester.exporters.output import ExportFolder
from harvester.exporters.rows import attribution_line, author_of, page_of
from harvester.exporters.selection import Item
from harvester.exporters.tables import csv_bytes
from harvester.licences import granted

COLUMNS = (
    "file", "provider", "provider_id", "title", "author", "page_url",
    "license_id", "license_name", "license_url", "attribution",
)  # fmt: skip


def attribution_rows(
    items: Sequence[Item], files: Mapping[int, str] | None = None
) -> list[dict[str, str]]:
    """One row per image; `file` is where the export put it (default: its stored path)."""
    rows = []
    for item in items:
        record = item.record
        name, url = item.image.licence
        rows.append(
            {
                "file": (files or {}).get(record["id"], record["path"]),
                "provider": record["provider"],
                "provider_id": record["provider_id"],
                "title": record["title"] or "",
                "author": author_of(item) or "",
                "page_url": page_of(item) or "",
                "license_id": record["license_id"] or "",
                "license_name": name or "",
                "license_url": url or "",
                "attribution": attribution_line(item),
            }
        )
    return sorted(rows, key=lambda r: r["file"])


# Line breaks and other controls: a title's newline would start a heading or a table row.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def _md(text: str) -> str:
    """Text that Markdown shows as typed, on one line."""
    text = _CONTROLS.sub(" ", text)
    for char in "\\`*_[]<>|":
        text = text.replace(char, "\\" + char)
    return text


def _link(text: str, url: str) -> str:
    """`[text](url)` to an http(s) URL, else the text alone: a provider's licence URL may be
    `javascript:...`, and a URL list's may hold `)[x](javascript:...)` to end the link early."""
    if not url.lower().startswith(("http://", "https://")):
        return text
    return f"[{text}]({''.join(map(_in_link, url))})"


def _in_link(char: str) -> str:
    """A URL's character as a link destination holds it: percent-encoded if it could end one."""
    unsafe = char in "()<>\\" or char.isspace() or not char.isprintable()
    return quote(char) if unsafe else char


LICENSED = (
    "Each is used under the licence named beside it, on its terms: credit the author, link the"
    " licence, and where it says so use it only non-commercially (NC), share it only unchanged"
    " (ND) or share what you make from it alike (SA). A public-domain image (CC0, Public Domain"
    " Mark, no known copyright) asks for none of this; credit is still good practice."
)
UNLICENSED = (
    "These {n} are All Rights Reserved or of unknown licence (none recorded, or terms not read"
    " as a licence, named beside them): no licence to reuse them was granted, so they may not"
    " be redistributed, changed or published without their authors' permission (for named"
    " terms, unless those terms say otherwise). `harvester export --commercial-ok` (or"
    " `--derivatives-ok`) leaves them out."
)


def attribution_md(rows: Sequence[Mapping[str, str]]) -> bytes:
    """A summary by licence, then the images under a licence apart from those under none."""
    licences = Counter((r["license_name"] or "unknown licence", r["license_url"]) for r in rows)
    free: list[Mapping[str, str]] = []
    unlicensed: list[Mapping[str, str]] = []
    for row in rows:
        licensed = granted(row["license_name"] or None, row["license_url"] or None)
        (free if licensed else unlicensed).append(row)
    lines = ["# Attribution", "", _summary(len(rows), len(unlicensed)), "", "## By licence", ""]
    lines += ["| licence | images |", "|---|---|"]
    for (name, url), count in sorted(licences.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"| {_link(_md(name), url)} | {count} |")
    if free:
        lines += ["", "## Images", "", LICENSED, "", *map(_md_line, free)]
    if unlicensed:
        lines += ["", "## Images with no licence granted", ""]
        lines += [UNLICENSED.format(n=len(unlicensed)), "", *map(_md_line, unlicensed)]
    return ("\n".join(lines) + "\n").encode("utf-8")


def _summary(images: int, unlicensed: int) -> str:
    if not unlicensed:
        return f"{images} images, each under the licence named beside it."
    return (
        f"{images} images: {images - unlicensed} under the licence named beside each,"
        f" {unlicensed} with no licence granted (the last section)."
    )


def _md_line(row: Mapping[str, str]) -> str:
    title = _md(row["title"] or f"{row['provider']} image {row['provider_id']}")
    author = f" by {_md(row['author'])}" if row["author"] else ""
    licence = _link(_md(row["license_name"] or "unknown licence"), row["license_url"])
    return f"- `{row['file']}`: {_link(title, row['page_url'])}{author}, {licence}"


def write_attribution(
    items: Sequence[Item], folder: ExportFolder, files: Mapping[int, str] | None = None
) -> int:
    rows = attribution_rows(items, files)
    folder.write("attribution.csv", csv_bytes(rows, COLUMNS, text=COLUMNS))
    folder.write("ATTRIBUTION.md", attribution_md(rows))
    return len(rows)
