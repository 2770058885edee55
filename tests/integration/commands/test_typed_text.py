"""Text typed on the command line that reaches a varchar column (a campaign name, a state, a
reason code, a sequence id) is refused in one line at argument parsing when no column could
hold it as typed, on both databases, and nothing is stored."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

UNDECODABLE = os.fsdecode(b"c\xff")  # `--campaign $'c\xff'`: a lone surrogate to Python
NOT_UTF8 = "not UTF-8 text (byte 0xff at character 2)"


def _harvester(database_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harvester.cli", "--database-url", database_url, *args],
        capture_output=True, text=True, timeout=120, cwd=cwd, env=os.environ,
    )  # fmt: skip


def _refused(done: subprocess.CompletedProcess[str], argument: str, why: str) -> None:
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1].endswith(f"argument {argument}: {why}"), done.stderr


def _no_campaigns(database_url: str, cwd: Path) -> None:
    listed = _harvester(database_url, cwd, "campaigns", "list")
    assert listed.returncode == 0 and "no campaigns yet" in listed.stdout, listed


@pytest.fixture
def url_list(tmp_path: Path) -> Path:
    listing = tmp_path / "list.csv"
    listing.write_text("url\nhttp://img.example/a.jpg\n")
    (tmp_path / "queries.txt").write_text("sunset\n")
    return listing


SUBMITS = [
    ["submit", "urls", "list.csv"],
    ["submit", "flickr", "--queries", "queries.txt"],
    ["submit", "mapillary", "--sequence", "abc"],
]


@pytest.mark.parametrize("submit", SUBMITS, ids=lambda s: s[1])
def test_a_campaign_name_with_an_undecodable_byte_is_refused_naming_the_argument(
    database_url: str, url_list: Path, submit: list[str]
) -> None:
    """Once a DBAPIError of a dozen lines on PostgreSQL, `UnicodeEncodeError` on SQLite."""
    done = _harvester(database_url, url_list.parent, *submit, "--campaign", UNDECODABLE)
    _refused(done, "--campaign", NOT_UTF8)
    _no_campaigns(database_url, url_list.parent)


@pytest.mark.parametrize("name", ["", "   "], ids=["empty", "spaces"])
def test_a_blank_campaign_name_is_refused_at_argument_parsing(
    sqlite_url: str, url_list: Path, name: str
) -> None:
    """No campaign ever had a blank name: refused before the database is asked."""
    done = _harvester(sqlite_url, url_list.parent, *SUBMITS[0], "--campaign", name)
    _refused(done, "--campaign", "a campaign name cannot be empty or only spaces")
    assert not (url_list.parent / "harvester.db").exists()


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("c\x1b[31m", "cannot hold control or invisible characters (U+001B at character 2)"),
        ("c\nd", "cannot hold control or invisible characters (U+000A at character 2)"),
        ("\u202ec", "cannot hold control or invisible characters (U+202E at character 1)"),
        ("x" * 201, "is at most 200 characters, got 201"),
        (" bx", "cannot begin or end with a space, got ' bx'"),
        ("bx ", "cannot begin or end with a space, got 'bx '"),
    ],
    ids=["escape", "newline", "bidi", "too-long", "leading", "trailing"],
)
def test_a_new_campaign_name_that_cannot_be_kept_as_typed_is_refused(
    database_url: str, url_list: Path, name: str, why: str
) -> None:
    """SQLite kept a name over varchar(200) (PostgreSQL refused it with its DBAPIError), and
    an escape or newline too, to be shown escaped forever after. Refused once the database
    says no campaign has it (one kept from before is added to: test_refused_inputs)."""
    done = _harvester(database_url, url_list.parent, *SUBMITS[0], "--campaign", name)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip() == (
        f"harvester: a new campaign's name {why}; `harvester campaigns list` lists the campaigns"
    ), done.stderr
    _no_campaigns(database_url, url_list.parent)


@pytest.mark.parametrize("submit", SUBMITS, ids=lambda s: s[1])
def test_every_submit_refuses_a_new_campaign_a_name_it_could_not_keep(
    sqlite_url: str, url_list: Path, submit: list[str]
) -> None:
    done = _harvester(sqlite_url, url_list.parent, *submit, "--campaign", "bx ")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "harvester: a new campaign's name cannot begin or end with a space" in done.stderr
    _no_campaigns(sqlite_url, url_list.parent)


def test_a_campaign_name_of_200_characters_is_kept_as_typed(
    database_url: str, url_list: Path
) -> None:
    name = "é" * 200  # characters, not bytes, are what varchar(200) counts
    done = _harvester(database_url, url_list.parent, *SUBMITS[0], "--campaign", name)
    assert done.returncode == 0, done.stderr
    shown = _harvester(database_url, url_list.parent, "campaigns", "show", name)
    assert shown.returncode == 0 and name in shown.stdout, shown


@pytest.mark.parametrize(
    ("command", "argument"),
    [
        (["cancel", "--campaign"], "--campaign"),
        (["retry-failed", "--campaign"], "--campaign"),
        (["status", "--campaign"], "--campaign"),
        (["export", "--format", "csv", "--out", "out", "--campaign"], "--campaign"),
        (["report", "--out", "out", "--campaign"], "--campaign"),
        (["jobs", "list", "--campaign"], "--campaign"),
        (["jobs", "list", "--state"], "--state"),
        (["jobs", "list", "--reason"], "--reason"),
        (["jobs", "retry", "--campaign"], "--campaign"),
        (["jobs", "retry", "--reason"], "--reason"),
        (["campaigns", "show"], "name"),
        (["campaigns", "pause"], "name"),
        (["campaigns", "resume"], "name"),
        (["campaigns", "delete"], "name"),
        (["db", "downgrade"], "revision"),
    ],
    ids=lambda p: "-".join(p) if isinstance(p, list) else None,
)
def test_text_looked_up_with_an_undecodable_byte_is_refused_naming_the_argument(
    sqlite_url: str, tmp_path: Path, command: list[str], argument: str
) -> None:
    """Refused before the database is asked (on SQLite `UnicodeEncodeError`, on PostgreSQL
    a DBAPIError quoting the SQL): a value no column holds matches none either."""
    _refused(_harvester(sqlite_url, tmp_path, *command, UNDECODABLE), argument, NOT_UTF8)


@pytest.mark.parametrize("sequence", [os.fsdecode(b"s\xff"), "s\n1", "s\t", " "])
def test_a_sequence_id_that_is_not_one_is_refused_and_makes_no_campaign(
    database_url: str, tmp_path: Path, sequence: str
) -> None:
    """An undecodable byte failed with pydantic's traceback and left the campaign behind;
    a newline was queued as part of the id."""
    done = _harvester(
        database_url, tmp_path, "submit", "mapillary", "--campaign", "m", "--sequence", sequence
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("harvester: unusable sequence id"), lines
    _no_campaigns(database_url, tmp_path)


def test_a_flickr_licence_id_in_digits_other_than_ascii_is_refused(
    sqlite_url: str, url_list: Path
) -> None:
    """str.isdigit takes ARABIC-INDIC DIGIT ONE, which was stored and sent to Flickr."""
    done = _harvester(
        sqlite_url, url_list.parent, *SUBMITS[1], "--campaign", "f", "--license=\u0661"
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.splitlines() == [
        "harvester: --license takes numeric Flickr licence ids, got '\u0661'"
    ]
    _no_campaigns(sqlite_url, url_list.parent)
