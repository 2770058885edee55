"""Text a user or a remote API chose reaches the terminal escaped: a name with ESC, BEL, CR
or a newline in it can neither retitle the window, clear the screen nor forge a table line."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "harvester.cli"]
NAME = "evil\x1b]0;pwned\x07\x1b[2J\rfake\nforged\tx\x9b1m\u202e"
TITLE = "a title\x1b[31m red\nsecond line"
ERROR = "HTTP 500 from cdn: \x1b]8;;http://attacker/\x07click\x1b]8;;\x07\r\n"
RAW = ("\x1b", "\x07", "\r", "\x9b", "\u202e", "\t")


def _run(*args: str, code: int = 0) -> tuple[str, str]:
    """stdout and stderr as written: text mode would turn a raw CR into a newline."""
    done = subprocess.run([*CLI, *args], capture_output=True, timeout=120, env=os.environ)
    out, err = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == code, err
    return out, err


@pytest.fixture
def hostile(sqlite_url: str, tmp_path: Path) -> str:
    """A campaign whose name, image title and owner, last error and pause message are hostile."""
    listing = tmp_path / "list.csv"
    with listing.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["url", "id", "title", "owner"])
        writer.writerow(["http://127.0.0.1:9/a.jpg", "id\x1b[2J1", TITLE, "owner\x1b]0;x\x07"])
    _run("--database-url", sqlite_url, "submit", "urls", "--campaign", "evil", str(listing))
    with sqlite3.connect(tmp_path / "harvester.db") as db:
        # A new name may not hold control characters; one a database kept from before may.
        db.execute("UPDATE campaigns SET name = ?", (NAME,))
        db.execute(
            "UPDATE images SET state = 'failed', reason = 'http_5xx', last_error = ?", (ERROR,)
        )
        db.execute(
            "UPDATE campaigns SET paused_at = created_at, paused_reason = 'paused', "
            "paused_message = ?",
            (ERROR,),
        )
    return sqlite_url


def _escaped(text: str, lines: int | None = None) -> None:
    for char in RAW:
        assert char not in text, (char, text)
    if lines is not None:
        assert len(text.splitlines()) == lines, text


@pytest.mark.parametrize(
    ("command", "lines"),
    [
        (("campaigns", "list"), 2),
        (("campaigns", "show", NAME), None),
        (("status",), None),
        (("status", "--campaign", NAME), None),
        (("jobs", "list"), 2),
        (("jobs", "show", "1"), None),
    ],
)
def test_hostile_text_is_shown_escaped(
    hostile: str, command: tuple[str, ...], lines: int | None
) -> None:
    out, _ = _run("--database-url", hostile, *command)
    _escaped(out, lines)
    assert "evil\\x1b]0;pwned\\x07" in out, out


def test_the_table_line_of_a_hostile_campaign_shows_its_name_escaped(hostile: str) -> None:
    out, _ = _run("--database-url", hostile, "campaigns", "list")
    assert out.splitlines()[1].startswith("evil\\x1b]0;pwned\\x07\\x1b[2J\\rfake\\nforged"), out


def test_jobs_show_escapes_every_field_from_the_remote_side(hostile: str) -> None:
    out, _ = _run("--database-url", hostile, "jobs", "show", "1")
    _escaped(out)
    assert "a title\\x1b[31m red\\nsecond line" in out, out
    assert "\\x1b]8;;http://attacker/\\x07click" in out, out


def test_an_error_naming_a_hostile_campaign_is_one_escaped_line(hostile: str) -> None:
    _, err = _run("--database-url", hostile, "campaigns", "show", NAME + "\x1b[2J", code=2)
    _escaped(err, 1)


def test_json_keeps_the_text_exact(hostile: str) -> None:
    for command, key, field in (
        (("campaigns", "list"), "campaigns", "name"),
        (("status",), "campaigns", "name"),
        (("jobs", "list"), "jobs", "campaign"),
    ):
        out, _ = _run("--database-url", hostile, *command, "--json")
        _escaped(out)  # JSON escapes control characters itself
        assert json.loads(out)[key][0][field] == NAME, (command, out)
    detail = json.loads(_run("--database-url", hostile, "jobs", "show", "1", "--json")[0])
    assert detail["title"] == TITLE and detail["last_error"] == ERROR, detail


def test_a_typed_backslash_escape_reads_differently_from_a_real_control(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A name typed as the characters \\x1b was shown just as one holding a real ESC."""
    listing = tmp_path / "list.csv"
    listing.write_text("url\nhttp://127.0.0.1:9/a.jpg\n")
    typed, real = "typed\\x1b[2J", "real\x1b[2J"
    for name in (typed, "real"):
        _run("--database-url", sqlite_url, "submit", "urls", "--campaign", name, str(listing))
    with sqlite3.connect(tmp_path / "harvester.db") as db:  # kept from before names were checked
        db.execute("UPDATE campaigns SET name = ? WHERE name = 'real'", (real,))
    out, _ = _run("--database-url", sqlite_url, "campaigns", "list")
    _escaped(out, 3)
    assert "typed\\\\x1b[2J" in out and "real\\x1b[2J" in out, out
    listed = json.loads(_run("--database-url", sqlite_url, "campaigns", "list", "--json")[0])
    assert {c["name"] for c in listed["campaigns"]} == {typed, real}, listed
