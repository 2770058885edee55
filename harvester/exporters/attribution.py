"""ATTRIBUTION.md and attribution.csv: the credit a publisher ships with the images."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from harvester.exporters.output import ExportFolder
from harvester.exporters.rows import attribution_line, author_of, page_of
from harvester.exporters.selection import Item
from harvester.exporters.tables import csv_bytes

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


def _md(text: str) -> str:
    """Text that Markdown shows as typed."""
    for char in "\\`*_[]<>|":
        text = text.replace(char, "\\" + char)
    return text


def attribution_md(rows: Sequence[Mapping[str, str]]) -> bytes:
    licences = Counter((r["license_name"] or "unknown licence", r["license_url"]) for r in rows)
    lines = [
        "# Attribution",
        "",
        f"{len(rows)} images. Each is used under the licence named beside it; follow the",
        "licence's terms (credit the author, link the licence, share alike where it says so).",
        "",
        "## By licence",
        "",
        "| licence | images |",
        "|---|---|",
    ]
    for (name, url), count in sorted(licences.items(), key=lambda kv: (-kv[1], kv[0])):
        shown = f"[{_md(name)}]({url})" if url else _md(name)
        lines.append(f"| {shown} | {count} |")
    lines += ["", "## Images", ""]
    for row in rows:
        title = _md(row["title"]) or f"{row['provider']} image {row['provider_id']}"
        page = f"[{title}]({row['page_url']})" if row["page_url"] else title
        author = f" by {_md(row['author'])}" if row["author"] else ""
        name = _md(row["license_name"] or "unknown licence")
        licence = f"[{name}]({row['license_url']})" if row["license_url"] else name
        lines.append(f"- `{row['file']}`: {page}{author}, {licence}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def write_attribution(
    items: Sequence[Item], folder: ExportFolder, files: Mapping[int, str] | None = None
) -> int:
    rows = attribution_rows(items, files)
    folder.write("attribution.csv", csv_bytes(rows, COLUMNS, text=COLUMNS))
    folder.write("ATTRIBUTION.md", attribution_md(rows))
    return len(rows)
