"""One flat row per exported image: the columns every table format shares, in one order."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pyarrow as pa

from harvester.exporters.selection import Item
from harvester.redact import public_text, public_url
from harvester.sources.pages import page_url, secret_columns

_HIT = pa.struct(
    [
        ("campaign", pa.string()),
        ("query", pa.string()),
        ("role", pa.string()),
        ("pair", pa.int64()),
        ("other", pa.string()),
    ]
)
_TIME = pa.timestamp("us", tz="UTC")

# name -> Arrow type; the order is the order of every table's columns.
SCHEMA = pa.schema(
    [  # type: ignore[arg-type]  # pyarrow-stubs type each pair's type exactly
        ("provider", pa.string()),
        ("provider_id", pa.string()),
        ("image_id", pa.int64()),
        ("campaign", pa.string()),
        ("path", pa.string()),
        ("width", pa.int64()),
        ("height", pa.int64()),
        ("bytes", pa.int64()),
        ("sha256", pa.string()),
        ("source_width", pa.int64()),
        ("source_height", pa.int64()),
        ("source_sha256", pa.string()),
        ("frame_top", pa.int64()),
        ("frame_right", pa.int64()),
        ("frame_bottom", pa.int64()),
        ("frame_left", pa.int64()),
        ("lat", pa.float64()),
        ("lon", pa.float64()),
        ("accuracy", pa.int64()),
        ("captured_at", _TIME),
        ("captured_local", pa.string()),
        ("uploaded_at", _TIME),
        ("stored_at", _TIME),
        ("heading", pa.float64()),
        ("heading_interpolated", pa.bool_()),
        ("is_pano", pa.bool_()),
        ("sequence_id", pa.string()),
        ("group_name", pa.string()),
        ("owner", pa.string()),
        ("owner_name", pa.string()),
        ("title", pa.string()),
        ("tags", pa.string()),
        ("license_id", pa.string()),
        ("license_name", pa.string()),
        ("license_url", pa.string()),
        ("attribution", pa.string()),
        ("page_url", pa.string()),
        ("source_url", pa.string()),
        ("campaigns", pa.list_(pa.string())),
        ("queries", pa.list_(pa.string())),
        ("hits", pa.list_(_HIT)),
        ("phash", pa.string()),
        ("raw", pa.string()),
    ]
)
COLUMNS = tuple(SCHEMA.names)


def _public(url: str | None, *, keep_query: bool = True) -> str | None:
    """A URL fit to publish (harvester.redact); without its query when that is a signature."""
    if not url:
        return None
    shown = public_url(url)
    return (shown if keep_query else shown.split("?", 1)[0]) or None


def _scrubbed(value: Any) -> Any:
    """A raw provider record fit to publish: a URL made public, free text (a Flickr
    description quoting a signed link) with its words kept and its URLs and credentials
    cleaned, as harvester.redact.public_text does."""
    if isinstance(value, Mapping):
        return {str(k): _scrubbed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrubbed(v) for v in value]
    if isinstance(value, str):
        return public_text(value)
    return value


def _raw_column(provider: str, raw: Mapping[str, Any] | None) -> str | None:
    """The raw record as JSON text, less a URL list's columns named like secrets."""
    if raw is None:
        return None
    withheld = secret_columns(provider, raw)
    kept = {k: v for k, v in raw.items() if k not in withheld}
    return json.dumps(_scrubbed(kept), sort_keys=True, ensure_ascii=False)


def author_of(item: Item) -> str | None:
    record = item.record
    name = record["owner_name"] or record["owner"]
    if name and record["provider"] == "mapillary":
        return f"@{name}"
    return str(name) if name else None


def page_of(item: Item) -> str | None:
    record = item.record
    return page_url(record["provider"], record["provider_id"], record["raw"], record["source_url"])


def attribution_line(item: Item) -> str:
    """`"Title" by Author (page), Licence (URL)`: what a publisher prints beside the image."""
    record = item.record
    title = record["title"] or f"{record['provider'].capitalize()} image {record['provider_id']}"
    author = author_of(item)
    page = page_of(item)
    name, url = item.image.licence
    line = f'"{title}"' + (f" by {author}" if author else "") + (f" ({page})" if page else "")
    if name:
        line += f", {name}" + (f" ({url})" if url else "")
    return line


def _hit_rows(item: Item) -> list[dict[str, Any]]:
    rows = []
    for hit in item.image.hits:
        detail = hit.detail or {}
        pairs = detail.get("pairs") or [
            {"pair": detail.get("pair"), "other": detail.get("other"), "role": hit.role}
        ]
        for pair in pairs:
            rows.append(
                {
                    "campaign": hit.campaign,
                    "query": hit.query,
                    "role": pair.get("role", hit.role),
                    "pair": pair.get("pair"),
                    "other": pair.get("other"),
                }
            )
    return rows


def table_row(item: Item) -> dict[str, Any]:
    """Every recorded field of the image, its licence, attribution and finders."""
    record = item.record
    frame = record["frame"] or {}
    hits = _hit_rows(item)
    name, url = item.image.licence
    return {
        "provider": record["provider"],
        "provider_id": record["provider_id"],
        "image_id": record["id"],
        "campaign": item.image.campaign,
        "path": record["path"],
        "width": record["width"],
        "height": record["height"],
        "bytes": record["bytes"],
        "sha256": record["sha256"],
        "source_width": record["source_width"],
        "source_height": record["source_height"],
        "source_sha256": record["source_sha256"],
        "frame_top": frame.get("top"),
        "frame_right": frame.get("right"),
        "frame_bottom": frame.get("bottom"),
        "frame_left": frame.get("left"),
        "lat": item.lat,
        "lon": item.lon,
        "accuracy": record["accuracy"],
        "captured_at": record["captured_at"],
        "captured_local": record["captured_local"],
        "uploaded_at": record["uploaded_at"],
        "stored_at": record["finished_at"],
        "heading": item.heading,
        "heading_interpolated": item.heading_interpolated,
        "is_pano": record["is_pano"],
        "sequence_id": record["sequence_id"],
        "group_name": record["group_name"],
        "owner": record["owner"],
        "owner_name": record["owner_name"],
        "title": record["title"],
        "tags": record["tags"],
        "license_id": record["license_id"],
        "license_name": name,
        "license_url": url,
        "attribution": attribution_line(item),
        "page_url": page_of(item),
        # Mapillary's thumbnail URLs are signed and expire: the page URL is the lasting one.
        "source_url": _public(record["source_url"], keep_query=record["provider"] != "mapillary"),
        "campaigns": sorted({hit["campaign"] for hit in hits} | {item.image.campaign}),
        "queries": sorted({hit["query"] for hit in hits}),
        "hits": hits,
        "phash": record["phash"],
        "raw": _raw_column(record["provider"], record["raw"]),
    }


def plain(value: Any) -> Any:
    """A value as JSON text carries it: times in ISO 8601 UTC."""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value
