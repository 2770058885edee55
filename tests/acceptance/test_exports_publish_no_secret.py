"""What a user publishes carries no secret and keeps its words: a Flickr description quoting
a signed link, a URL list's own api_key column; harvested and exported through the CLI."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pyarrow.parquet as pq
from daemon_harness import Harness

from harvester.emulator import FLICKR_KEY, World

SEED = 7  # the emulator's default world
TOKEN = re.compile(r"&amp;token=[0-9a-f]+")
# A URL list's columns named like secrets, and ones that only look close (kept as given).
SECRET_COLUMNS = ("api_key", "session_token", "password", "auth")
KEPT_COLUMNS = ("key", "author", "caption")


async def _harvest_and_export(
    harness: Harness, campaign: str, submit: tuple[str, ...], fmt: str, out: Path
) -> list[str]:
    """Submit, harvest until idle and export `campaign` through the CLI; what each printed."""
    said = []
    for argv in (
        ("submit", submit[0], "--campaign", campaign, *submit[1:]),
        ("run", "--until-idle"),
        ("export", "--campaign", campaign, "--format", fmt, "--out", str(out)),
    ):
        code, printed = await harness.cli(*argv, limit_s=300)
        assert code == 0, printed
        said.append(printed)
    return said


async def test_a_description_quoting_a_signed_link_exports_its_words_without_the_token(
    harness: Harness, tmp_path: Path
) -> None:
    await harness.start_emulator()
    harness.extra_env = {
        "HARVESTER_FLICKR_API_URL": f"{harness.base_url}/services/rest/",
        "HARVESTER_FLICKR_API_KEY": FLICKR_KEY,
    }
    (tmp_path / "queries.txt").write_text("castle\n")
    export = tmp_path / "export"
    dates = ("--min-upload-date", "2023-01-01", "--max-upload-date", "2023-12-31")
    submit = ("flickr", "--queries", str(tmp_path / "queries.txt"), *dates)
    await _harvest_and_export(harness, "castles", submit, "parquet", export)

    photos = {p.id: p for p in World(SEED).flickr.photos}
    rows = pq.read_table(next(export.glob("*.parquet"))).to_pylist()
    linked = [r for r in rows if "<a href=" in photos[r["provider_id"]].description]
    assert len(linked) >= 3, "the world quotes a signed link in some castles' descriptions"
    for row in linked:
        photo, raw = photos[row["provider_id"]], json.loads(row["raw"])
        # Every word and the link kept; only the token's parameter gone.
        assert raw["description"]["_content"] == TOKEN.sub("", photo.description), row["raw"]
        assert "token" not in row["raw"]
        assert raw["secret"] == photo.secret  # Flickr's `secret` names the file: kept


async def test_a_url_lists_secret_columns_reach_no_export_log_or_listing(
    harness: Harness, tmp_path: Path
) -> None:
    await harness.start_emulator()
    listing = tmp_path / "street.csv"
    await harness.url_list(12, listing)
    with listing.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    secrets = {}
    for i, row in enumerate(rows):
        for name in SECRET_COLUMNS:
            row[name] = secrets[f"{name}{i}"] = f"{name}-sk-live-{i:02d}-0e1b2a3c4d"
        row.update(key=f"{i:09d}", author=f"Ana Berg {i}", caption=f"Corner of 5th, view {i}")
    with listing.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    export = tmp_path / "export"
    said = await _harvest_and_export(harness, "street", ("urls", str(listing)), "csv", export)
    code, listed = await harness.cli("jobs", "list", "--campaign", "street", "--limit", "100")
    assert code == 0, listed
    stored = [r for r in await harness.rows() if r.state == "stored"]
    code, shown = await harness.cli("jobs", "show", str(stored[0].id))
    assert code == 0, shown

    with next(export.glob("*.csv")).open(newline="", encoding="utf-8") as handle:
        published = list(csv.DictReader(handle))
    assert len(published) == len(stored) >= 6
    by_id = {row["id"]: row for row in rows}
    for row in published:
        raw = json.loads(row["raw"])
        given = by_id[row["provider_id"].split(":", 1)[1]]
        assert not set(SECRET_COLUMNS) & set(raw), raw  # dropped, not published blank
        assert {name: raw[name] for name in KEPT_COLUMNS} == {n: given[n] for n in KEPT_COLUMNS}
    files = b"".join(p.read_bytes() for p in export.rglob("*") if p.is_file())
    assert '"api_key": "REDACTED"' in shown  # an operator sees the column was there
    for name, value in secrets.items():
        assert value.encode() not in files, name
        for text in (*said, listed, shown):
            assert value not in text, name
