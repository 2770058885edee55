"""URL lists: any CSV, TSV or Parquet file of image URLs becomes a harvest like any other."""

from __future__ import annotations

import csv
import hashlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from harvester.errors import InputError
from harvester.http import Body, Destinations, HostSlots, HttpClient
from harvester.licences import known
from harvester.records import Expansion, FoundImage, SubmitReport
from harvester.redact import shown_input_url
from harvester.sources.base import ImageView, TaskView, fetch_plain
from harvester.sources.fields import coordinate
from harvester.sources.flickr_placeholder import fetch_photo, listed_placeholder
from harvester.sources.pages import page_url
from harvester.sources.repeats import RepeatedKeys
from harvester.sources.settings import DEFAULT_SIZES, CampaignSettings, check_sizes
from harvester.sources.textfile import csv_records
from harvester.storage.layout import file_name, unique_slug

if TYPE_CHECKING:
    from harvester.db.session import Engine

KNOWN_COLUMNS = ("url", "id", "lat", "lon", "captured_at", "license", "owner", "title")
BATCH = 1000
MAX_ID = 100  # provider ids are at most 200 characters, with the campaign folder in front
MAX_LICENSE = 40  # images.license_id is varchar(40): a longer value would be stored as NULL
MAX_PROBLEMS_SHOWN = 50
MAX_URL = 8 * 1024  # longer is no image URL; it would only bloat rows and error messages


@dataclass(frozen=True)
class UrlCampaign:
    name: str
    path: Path
    max_side: int = DEFAULT_SIZES.max_side
    min_side: int = DEFAULT_SIZES.min_side
    quality: int = DEFAULT_SIZES.quality

    def __post_init__(self) -> None:
        check_sizes(self.max_side, self.min_side)


class UrlListSettings(CampaignSettings):
    """A URL-list campaign's settings as stored (the rows were made at submit time)."""

    source_file: str


@dataclass
class _Counts:
    rows: int = 0
    added: int = 0
    known: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BadLine:
    reason: str


class NoRowQueued(InputError):
    """Every row of the list was rejected: no campaign is made (nor one changed). The
    rows' reasons are ``problems``, for the caller to list before this one line."""

    def __init__(self, message: str, problems: tuple[str, ...]) -> None:
        super().__init__(message)
        self.problems = problems


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | BadLine]]:
    """(line or row number, row) pairs, streamed; the format follows the file's extension."""
    suffix = path.suffix.lower()
    return _parquet_rows(path) if suffix == ".parquet" else _csv_rows(path, suffix)


def _csv_rows(path: Path, suffix: str) -> Iterator[tuple[int, dict[str, Any] | BadLine]]:
    header: list[str] | None = None
    delimiter = "\t" if suffix in (".tsv", ".tab") else ","
    for number, cells in csv_records(path, delimiter=delimiter):
        if isinstance(cells, csv.Error):
            if header is None:
                raise InputError(f"{path}: the header line cannot be read: {cells}")
            yield number, BadLine(str(cells))  # e.g. a field past the size limit: that line only
            continue
        if header is None:
            header = [cell.strip().lower() for cell in cells]
            if "url" not in header:
                raise InputError(f"{path}: the header line must name a 'url' column")
            continue
        if any(cell.strip() for cell in cells):
            yield number, {k: v.strip() for k, v in zip(header, cells, strict=False) if k}
    if header is None:
        raise InputError(
            f"{path} is empty: a URL list is a header line naming a 'url' column, then rows"
        )


def _parquet_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | BadLine]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read Parquet file {path}: {exc}") from exc
    names = [name.lower() for name in table.schema_arrow.names]
    if "url" not in names:
        raise InputError(f"{path}: the Parquet file has no 'url' column")
    number = 0
    batches = table.iter_batches(batch_size=BATCH)
    while True:
        try:
            batch = next(batches, None)
            rows = [] if batch is None else batch.to_pylist()
        except (OSError, ValueError, pa.ArrowException) as exc:  # damaged pages or chunks
            raise InputError(
                f"{path}: the Parquet data is damaged after row {number}: {exc}"
            ) from None
        if batch is None:
            return
        for row in rows:
            number += 1
            yield number, {str(k).lower(): _finite(v) for k, v in row.items()}


def parse_row(row: Mapping[str, Any], campaign: str) -> FoundImage:
    """One row to an image; raises ValueError with a reason an operator can act on."""
    url = str(row.get("url") or "").strip()
    if len(url) > MAX_URL:
        raise ValueError(f"URL longer than {MAX_URL} characters ({len(url)})")
    for name, value in row.items():
        if isinstance(value, str) and "\0" in value:
            raise ValueError(f"{name} contains a NUL byte")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {shown_input_url(url)!r}")
    if not parts.hostname:
        raise ValueError(f"no host in the URL: {shown_input_url(url)!r}")
    _ = parts.port  # a port that is no port (99999, abc) raises ValueError, named by line
    given_id = str(row.get("id") or "").strip()
    if len(given_id) > MAX_ID:
        raise ValueError(f"id longer than {MAX_ID} characters: {given_id[:40]!r}...")
    image_id = given_id or hashlib.sha1(url.encode()).hexdigest()[:20]
    group = unique_slug(campaign)
    record: dict[str, Any] = {
        "lat": coordinate(_text(row.get("lat")), 90, "lat"),
        "lon": coordinate(_text(row.get("lon")), 180, "lon"),
        "captured_at": _timestamp(row.get("captured_at")),
        "license_id": _licence(row.get("license")),
        "owner": _text(row.get("owner")),
        "owner_name": _text(row.get("owner")),
        "title": _text(row.get("title")),
        "raw": {k: _jsonable(v) for k, v in row.items() if k not in KNOWN_COLUMNS},
    }
    if (record["lat"] is None) != (record["lon"] is None):
        raise ValueError("lat and lon must be given together")
    return FoundImage(
        provider_id=f"{group}:{image_id}",
        group=group,
        file_name=file_name(image_id),
        source_url=url,
        record=record,
    )


async def submit_urls(
    engine: Engine,
    campaign: UrlCampaign,
    *,
    max_attempts: int,
    update_settings: bool = False,
    submit_id: str | None = None,
) -> SubmitReport:
    """Insert every good row as an image; bad rows are reported by number, never fatal
    unless every row is one, or there is none (NoRowQueued): a campaign of nothing."""
    # Here, not at the top: worker processes import this module to fetch, never the database.
    from harvester.db.campaigns import ensure_campaign

    settings = UrlListSettings(
        source_file=str(campaign.path),
        max_side=campaign.max_side,
        min_side=campaign.min_side,
        quality=campaign.quality,
    ).stored()
    # The campaign is made (or its settings changed) at the first good row: a file that is
    # not a list, one with no row, or one whose every row is rejected changes nothing.
    campaign_id: int | None = None
    report = _Counts()
    query = campaign.path.name
    batch: dict[str, FoundImage] = {}
    repeats = RepeatedKeys()
    in_batch = 0
    for number, row in read_rows(campaign.path):
        report.rows += 1
        try:
            if isinstance(row, BadLine):
                raise ValueError(row.reason)
            image = parse_row(row, campaign.name)
        except ValueError as exc:
            report.problems.append(f"{campaign.path.name}:{number}: {exc}")
            continue
        if campaign_id is None:
            # Another list may feed the same campaign: only the size rules must agree.
            campaign_id = await ensure_campaign(
                engine,
                campaign.name,
                "urls",
                settings,
                update_settings=update_settings,
                unchecked=frozenset({"source_file"}),
                submit_id=submit_id,
            )
        repeats.add(image.provider_id, number)
        if image.provider_id in batch:
            in_batch += 1
        else:
            batch[image.provider_id] = image
        if len(batch) >= BATCH:
            await _flush(engine, campaign_id, query, batch, report, max_attempts)
    if campaign_id is None:
        raise NoRowQueued(_nothing_queued(campaign.path, report.rows), tuple(report.problems))
    await _flush(engine, campaign_id, query, batch, report, max_attempts)
    found = repeats.repeats()
    # A repeat in an earlier batch was counted as known; it is a rejected line instead.
    report.known -= len(found) - in_batch
    name = campaign.path.name
    report.problems += [
        f"{name}:{line}: duplicate id (first on line {first})" for line, first in found
    ]
    return SubmitReport(
        campaign_id,
        problems=tuple(report.problems),
        rows=report.rows,
        images_added=report.added,
        images_known=report.known,
    )


def _nothing_queued(path: Path, rows: int) -> str:
    if not rows:
        return f"{path} has column names but no rows: nothing to queue"
    return (
        f"{path.name}: {rows} row{'' if rows == 1 else 's'} read,"
        " all rejected: nothing queued, no campaign made or changed"
    )


async def _flush(
    engine: Engine,
    campaign_id: int,
    query: str,
    batch: dict[str, FoundImage],
    report: _Counts,
    max_attempts: int,
) -> None:
    from harvester.db.catalog import add_images  # as in submit_urls

    if batch:
        found = list(batch.values())
        added = await add_images(
            engine, campaign_id, "urls", query, found, max_attempts=max_attempts
        )
        report.added += added.new
        report.known += added.known
        batch.clear()


class UrlSource:
    """Fetching is all there is: the rows were made at submit time."""

    provider = "urls"
    kinds: frozenset[str] = frozenset()

    def __init__(
        self,
        http: HttpClient,
        *,
        host_slots: HostSlots | None = None,
        max_bytes: int | None = None,
        destinations: Destinations | None = None,
    ) -> None:
        self.http = http
        self.destinations = destinations
        self.host_slots = host_slots
        self.max_bytes = max_bytes

    async def expand(self, task: TaskView, campaign: Mapping[str, Any]) -> Expansion:
        raise InputError(f"URL-list campaigns have no tasks of kind {task.kind!r}")

    async def fetch(self, image: ImageView) -> Body:
        """The URL's body; a deleted Flickr photo's placeholder (a YFCC-style list of
        Flickr URLs) is `unavailable`, never stored nor counted as a duplicate source."""
        if not image.source_url:
            return await fetch_plain(self.http, image)  # raises: nothing to fetch
        return await fetch_photo(
            self.http,
            image.source_url,
            listed_placeholder,
            host_slots=self.host_slots,
            max_bytes=self.max_bytes,
            destinations=self.destinations,
        )

    def page_url(self, image: ImageView) -> str | None:
        return page_url(self.provider, image.provider_id, image.raw, image.source_url)


def _text(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _licence(value: Any) -> str | None:
    """The canonical id of a licence however written (`CC BY 4.0`, its creativecommons.org
    URL: CC-BY-4.0), else the text as given; one too long to store is the row's reason."""
    text = _text(value)
    licence = known(text)
    if licence is not None:
        return licence.id
    if text is not None and len(text) > MAX_LICENSE:
        raise ValueError(
            f"license longer than {MAX_LICENSE} characters and no licence harvester knows"
            f" (an SPDX id or a creativecommons.org URL is): {text[:40]!r}..."
        )
    return text


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = _text(value)
    if text is None:
        return None
    try:
        if text.replace(".", "", 1).isdigit():
            seconds = float(text)
            return datetime.fromtimestamp(seconds / 1000 if seconds > 1e11 else seconds, UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise ValueError(f"captured_at is not a date: {text[:40]!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _finite(value: Any) -> Any:
    """NaN and infinities (pandas' missing floats) as None: JSON, so Postgres, has no NaN."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
