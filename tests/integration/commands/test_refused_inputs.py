"""Input that once did nothing, silently and with exit 0, is refused in one line with exit 2:
a filter no row can match, a URL list with no rows, a campaign name that is hard to type
again, options a command would have ignored."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest


def _harvester(database_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harvester.cli", "--database-url", database_url, *args],
        capture_output=True, text=True, timeout=120, cwd=cwd, env=os.environ,
    )  # fmt: skip


def _refused(done: subprocess.CompletedProcess[str], why: str) -> None:
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1].endswith(why), done.stderr


def test_jobs_list_refuses_a_state_that_is_none_naming_the_states(
    sqlite_url: str, tmp_path: Path
) -> None:
    """`--state faild` printed "no rows match" and exited 0, as if no row had failed."""
    done = _harvester(sqlite_url, tmp_path, "jobs", "list", "--state", "stored", "--state", "faild")
    _refused(
        done,
        "argument --state: 'faild' is not a state; use one of "
        "queued, running, done, failed, cancelled, stored, skipped",
    )
    for state in ("done", "stored", "failed"):
        listed = _harvester(sqlite_url, tmp_path, "jobs", "list", "--state", state)
        assert listed.returncode == 0 and "no rows match" in listed.stdout, listed


def _no_campaigns(database_url: str, cwd: Path) -> None:
    listed = _harvester(database_url, cwd, "campaigns", "list")
    assert listed.returncode == 0 and "no campaigns yet" in listed.stdout, listed


@pytest.mark.parametrize(
    ("name", "content", "why"),
    [
        ("zero.csv", b"", "is empty: a URL list is a header line naming a 'url' column, then rows"),
        ("header.csv", b"url,title\n", "has column names but no rows: nothing to queue"),
        ("blank.tsv", b"url\ttitle\n\n \t \n", "has column names but no rows: nothing to queue"),
        ("zero.parquet", None, "has column names but no rows: nothing to queue"),
    ],
    ids=["no-bytes", "header-only", "blank-lines", "parquet-of-no-rows"],
)
def test_a_url_list_with_no_rows_is_refused_and_makes_no_campaign(
    database_url: str, tmp_path: Path, name: str, content: bytes | None, why: str
) -> None:
    """A header with no row under it (or a Parquet file of none) made an empty campaign and
    exited 0; a file of no bytes was said to lack a 'url' column."""
    listing = tmp_path / name
    if content is None:
        pq.write_table(pa.table({"url": pa.array([], pa.string())}), listing)
    else:
        listing.write_bytes(content)
    done = _harvester(database_url, tmp_path, "submit", "urls", "--campaign", "c", name)
    _refused(done, f"harvester: {name} {why}")
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    _no_campaigns(database_url, tmp_path)


def test_an_empty_url_list_leaves_the_settings_of_its_campaign_alone(
    sqlite_url: str, tmp_path: Path
) -> None:
    (tmp_path / "list.csv").write_text("url\nhttp://img.example/a.jpg\n")
    (tmp_path / "empty.csv").write_text("url\n")
    submit = ("submit", "urls", "--campaign", "c")
    kept = _harvester(sqlite_url, tmp_path, *submit, "--max-side", "2048", "list.csv")
    assert kept.returncode == 0, kept.stderr
    done = _harvester(sqlite_url, tmp_path, *submit, "--update", "--max-side", "1024", "empty.csv")
    _refused(done, "empty.csv has column names but no rows: nothing to queue")
    shown = _harvester(sqlite_url, tmp_path, "campaigns", "show", "c", "--json")
    assert json.loads(shown.stdout)["settings"]["max_side"] == 2048, shown


def test_a_campaign_kept_from_before_with_spaces_round_its_name_is_found_by_that_name(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A new name may not begin or end with a space; one a database kept from before may, and
    every command that looks a campaign up finds it as it is stored."""
    (tmp_path / "list.csv").write_text("url\nhttp://img.example/a.jpg\n")
    made = _harvester(sqlite_url, tmp_path, "submit", "urls", "--campaign", "bx", "list.csv")
    assert made.returncode == 0, made.stderr
    with sqlite3.connect(tmp_path / "harvester.db") as db:
        db.execute("UPDATE campaigns SET name = ' bx '")
    for command in (
        ("campaigns", "show", " bx "),
        ("status", "--campaign", " bx "),
        ("jobs", "list", "--campaign", " bx "),
        ("campaigns", "pause", " bx "),
        ("cancel", "--campaign", " bx "),
    ):
        done = _harvester(sqlite_url, tmp_path, *command)
        assert done.returncode == 0 and "bx" in done.stdout, (command, done.stderr)
    refused = _harvester(sqlite_url, tmp_path, "campaigns", "show", "bx")
    _refused(refused, "harvester: no campaign named 'bx'; `harvester campaigns list` lists them")
