"""Input that once did nothing, silently and with exit 0, is refused in one line with exit 2:
a filter no row can match, a URL list with no rows or none usable, a campaign name that is
hard to type again, options a command would have ignored."""

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


def _two_images(sqlite_url: str, cwd: Path, state: str, reason: str) -> None:
    """Campaign c with two images, both finished in `state` with `reason`, not retryable."""
    (cwd / "list.csv").write_text("url\nhttp://img.example/a.jpg\nhttp://img.example/b.jpg\n")
    made = _harvester(sqlite_url, cwd, "submit", "urls", "--campaign", "c", "list.csv")
    assert made.returncode == 0, made.stderr
    with sqlite3.connect(cwd / "harvester.db") as db:
        db.execute("UPDATE images SET state = ?, reason = ?, retryable = 0", (state, reason))


TASKS = "with --kind task, --state takes queued, running, done, failed, cancelled"
IMAGES = "with --kind image, --state takes queued, running, stored, skipped, failed, cancelled"


@pytest.mark.parametrize(
    ("command", "why"),
    [
        ("list --kind task --state stored", f"a task is never 'stored'; {TASKS}"),
        (
            "list --state skipped --kind task --state done --state stored",
            f"a task is never 'skipped' or 'stored'; {TASKS}",
        ),
        ("list --kind image --state done", f"an image is never 'done'; {IMAGES}"),
        (
            "retry --kind task --state skipped",
            "a task is never 'skipped'; with --kind task, --state takes failed, cancelled",
        ),
    ],
    ids=["list-task-stored", "list-task-two", "list-image-done", "retry-task-skipped"],
)
def test_jobs_refuse_a_state_the_kind_never_has_naming_its_states(
    sqlite_url: str, tmp_path: Path, command: str, why: str
) -> None:
    """`--kind task --state stored` printed "no rows match" (retry: "queued again 0"), exit 0:
    only images are stored. Refused before the database is opened."""
    done = _harvester(sqlite_url, tmp_path, "jobs", *command.split())
    _refused(done, f"harvester: {why}")
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "harvester.db").exists()


def test_jobs_take_a_state_of_the_kind_named_or_of_either_without_one(
    sqlite_url: str, tmp_path: Path
) -> None:
    _two_images(sqlite_url, tmp_path, "skipped", "too_small")
    for taken in (
        ("list", "--kind", "image", "--state", "stored"),
        ("list", "--kind", "task", "--state", "done", "--state", "failed"),
        ("list", "--state", "done"),  # a task's: images have none, and tasks may
        ("retry", "--kind", "task"),  # --state failed, the default, is a task's too
    ):
        done = _harvester(sqlite_url, tmp_path, "jobs", *taken)
        assert done.returncode == 0 and not done.stderr, (taken, done)
    for skipped in (
        ("list", "--kind", "image", "--state", "skipped"),
        ("list", "--state", "skipped"),
    ):
        listed = _harvester(sqlite_url, tmp_path, "jobs", *skipped, "--json")
        assert listed.returncode == 0 and len(json.loads(listed.stdout)["jobs"]) == 2, listed
    retried = _harvester(
        sqlite_url,
        tmp_path,
        "jobs",
        "retry",
        "--kind",
        "image",
        "--state",
        "skipped",
        "--reason",
        "too_small",
    )
    assert retried.returncode == 0 and "queued again 2 rows in all" in retried.stdout, retried


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


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("url\n", " has column names but no rows: nothing to queue"),
        (
            "url\nftp://files.example/a.jpg\n",
            ": 1 row read, all rejected: nothing queued, no campaign made or changed",
        ),
    ],
    ids=["no-rows", "every-row-rejected"],
)
def test_a_list_queueing_nothing_leaves_its_campaign_as_it_was(
    sqlite_url: str, tmp_path: Path, content: str, why: str
) -> None:
    """A second list for a campaign: with every row rejected it was submitted (--update
    changing the campaign's settings) and exited 0."""
    (tmp_path / "list.csv").write_text("url\nhttp://img.example/a.jpg\n")
    (tmp_path / "nothing.csv").write_text(content)
    submit = ("submit", "urls", "--campaign", "c")
    kept = _harvester(sqlite_url, tmp_path, *submit, "--max-side", "2048", "list.csv")
    assert kept.returncode == 0, kept.stderr
    for update in ((), ("--update", "--max-side", "1024")):
        done = _harvester(sqlite_url, tmp_path, *submit, *update, "nothing.csv")
        _refused(done, f"nothing.csv{why}")
    shown = json.loads(_harvester(sqlite_url, tmp_path, "campaigns", "show", "c", "--json").stdout)
    assert shown["settings"]["max_side"] == 2048, shown
    assert shown["settings"]["source_file"].endswith("list.csv"), shown
    listed = _harvester(sqlite_url, tmp_path, "jobs", "list", "--campaign", "c", "--kind", "image")
    assert listed.stdout.count(" queued ") == 1, listed.stdout


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


@pytest.mark.parametrize(
    "name", [" bx ", "b\x1b[31mx", "bx\n"], ids=["spaces", "escape", "newline"]
)
def test_a_campaign_kept_from_before_with_a_name_now_refused_takes_more_rows_by_that_name(
    sqlite_url: str, tmp_path: Path, name: str
) -> None:
    """`submit urls --campaign ' bx '` was refused as a new name would be, though ' bx ' was
    there to add to, and no command could add rows to it: it is added to like any other."""
    (tmp_path / "more.csv").write_text("url\nhttp://img.example/c.jpg\n")
    _two_images(sqlite_url, tmp_path, "stored", "")
    with sqlite3.connect(tmp_path / "harvester.db") as db:
        db.execute("UPDATE campaigns SET name = ?", (name,))
    added = _harvester(sqlite_url, tmp_path, "submit", "urls", "--campaign", name, "more.csv")
    assert added.returncode == 0 and not added.stderr, added.stderr
    assert "1 rows read, 1 images queued, 0 already known, 0 rows rejected" in added.stdout
    again = _harvester(sqlite_url, tmp_path, "submit", "urls", "--campaign", name, "more.csv")
    assert again.returncode == 0 and "0 images queued, 1 already known" in again.stdout, again
    with sqlite3.connect(tmp_path / "harvester.db") as db:
        assert db.execute("SELECT name FROM campaigns").fetchall() == [(name,)]
        images = db.execute("SELECT state, COUNT(*) FROM images GROUP BY state ORDER BY state")
        assert images.fetchall() == [("queued", 1), ("stored", 2)]
    listed = _harvester(sqlite_url, tmp_path, "jobs", "list", "--campaign", name, "--json")
    assert listed.returncode == 0 and len(json.loads(listed.stdout)["jobs"]) == 3, listed


def test_a_url_list_whose_every_row_is_rejected_makes_no_campaign(
    database_url: str, tmp_path: Path
) -> None:
    """Every row rejected (not http(s), no URL) made an empty campaign and exited 0."""
    (tmp_path / "bad.csv").write_text(
        "url,id,lat\nftp://files.example/a.jpg,a,\n,b,\nhttp://x/c,c,91\n"
    )
    done = _harvester(database_url, tmp_path, "submit", "urls", "--campaign", "c", "bad.csv")
    why = "bad.csv: 3 rows read, all rejected: nothing queued, no campaign made or changed"
    _refused(done, f"harvester: {why}")
    assert done.stderr.splitlines()[:3] == [
        "  rejected: bad.csv:2: not an http(s) URL: 'ftp://files.example/a.jpg'",
        "  rejected: bad.csv:3: not an http(s) URL: ''",
        "  rejected: bad.csv:4: lat 91 is outside ±90",
    ], done.stderr
    assert len(done.stderr.splitlines()) == 4 and not done.stdout, done
    _no_campaigns(database_url, tmp_path)


def test_a_url_list_with_some_rows_rejected_queues_the_others(
    sqlite_url: str, tmp_path: Path
) -> None:
    (tmp_path / "mixed.csv").write_text(
        "url\nftp://files.example/a.jpg\nhttp://img.example/b.jpg\n"
    )
    done = _harvester(sqlite_url, tmp_path, "submit", "urls", "--campaign", "c", "mixed.csv")
    assert done.returncode == 0, done.stderr
    assert "mixed.csv:2: not an http(s) URL" in done.stderr, done.stderr
    assert "1 images queued, 0 already known, 1 rows rejected" in done.stdout, done.stdout
    again = _harvester(sqlite_url, tmp_path, "submit", "urls", "--campaign", "c", "mixed.csv")
    assert again.returncode == 0 and "0 images queued, 1 already known" in again.stdout, again


REASON_HINT = (
    "codes are http_NNN (an HTTP status: http_404) and words such as timeout, connection, "
    "too_slow, not_found, duplicate (the README lists them all)"
)


def test_jobs_refuse_a_reason_code_harvester_never_gives_naming_some(
    sqlite_url: str, tmp_path: Path
) -> None:
    """`--reason timout` printed "no rows match" (list) or "queued again 0" (retry), exit 0."""
    _two_images(sqlite_url, tmp_path, "failed", "http_404")
    for command in (("jobs", "list", "--reason"), ("jobs", "retry", "--reason", "http_404")):
        done = _harvester(sqlite_url, tmp_path, *command, "timout")
        _refused(done, f"'timout' is not a reason code; did you mean timeout? {REASON_HINT}")
    for typed, hint in (("HTTP_404", "did you mean http_404? "), ("http_44", "")):
        done = _harvester(sqlite_url, tmp_path, "jobs", "list", "--reason", typed)
        _refused(done, f"argument --reason: {typed!r} is not a reason code; {hint}{REASON_HINT}")
    listed = _harvester(sqlite_url, tmp_path, "jobs", "list", "--reason", "http_404", "--json")
    assert listed.returncode == 0 and len(json.loads(listed.stdout)["jobs"]) == 2, listed
    for code in ("timeout", "too_small", "skipped", "lease_lost"):  # none of the rows' own
        none = _harvester(sqlite_url, tmp_path, "jobs", "list", "--reason", code)
        assert none.returncode == 0 and "no rows match" in none.stdout, none
    retried = _harvester(sqlite_url, tmp_path, "jobs", "retry", "--reason", "http_404")
    assert retried.returncode == 0 and "2 images" in retried.stdout, retried
