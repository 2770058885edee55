"""Operator mistakes at start: one line naming the problem and what to check, exit 2."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from harvester.db.migrate import current_revision, head_revision
from harvester.db.session import create_engine

CLI = [sys.executable, "-m", "harvester.cli"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=120, env=os.environ
    )


def _one_clear_line(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("harvester: "), done.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_a_bad_log_level_names_the_levels() -> None:
    _one_clear_line(_run("--log-level", "verbose", "status"), "'verbose'", "debug, info")


def test_an_unreachable_postgres_names_the_url_without_its_password() -> None:
    done = _run("--database-url", "postgresql://ops:hunter2@127.0.0.1:1/x", "status")
    _one_clear_line(done, "127.0.0.1:1/x", "Connection refused", "--database-url")
    assert "hunter2" not in done.stderr


def test_a_missing_postgres_database_says_it_does_not_exist(postgres_url: str) -> None:
    missing = make_url(postgres_url).set(database="no_such_harvest_db")
    done = _run("--database-url", missing.render_as_string(hide_password=False), "status")
    _one_clear_line(done, 'database "no_such_harvest_db" does not exist')


def test_an_sqlite_file_that_cannot_be_opened() -> None:
    _one_clear_line(
        _run("--database-url", "sqlite:////proc/harvester.db", "jobs", "list"),
        "unable to open database file",
    )


def test_an_unwritable_storage_root_stops_the_daemon_before_it_starts(sqlite_url: str) -> None:
    done = _run("--database-url", sqlite_url, "--storage-root", "/proc/harvest", "run")
    _one_clear_line(done, "storage root /proc/harvest", "--storage-root")


@pytest.mark.parametrize("database", ["postgres", "sqlite"])
def test_run_refused_for_its_database_makes_no_storage_root(tmp_path: Path, database: str) -> None:
    """Bad input changes nothing on disk: the storage root's check removes the folders it
    made, and a database folder that cannot be made is one line, not a traceback (a bound
    socket that never listens refuses connections)."""
    root = tmp_path / "store"
    (tmp_path / "a-file").write_text("")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url, words = {
            "postgres": (f"postgresql://h@127.0.0.1:{closed.getsockname()[1]}/x", "refused"),
            "sqlite": (f"sqlite:///{tmp_path}/a-file/db/h.db", "cannot make its folder"),
        }[database]
        done = _run("--database-url", url, "--storage-root", str(root), "run", "--until-idle")
    _one_clear_line(done, words, "--database-url")
    assert not root.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_a_port_in_use_names_the_address(sqlite_url: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _run(
            "--database-url", sqlite_url, "--storage-root", str(tmp_path), "run",
            "--until-idle", "--http", f"127.0.0.1:{port}",
        )  # fmt: skip
    assert done.returncode == 2 and f"cannot serve HTTP on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_failed_submit_leaves_no_campaign_behind(sqlite_url: str, tmp_path: Path) -> None:
    no_url_column = tmp_path / "bad.csv"
    no_url_column.write_text("link\nhttp://x.test/y.jpg\n")
    bad = _run(
        "--database-url", sqlite_url, "submit", "urls", "--campaign", "c1", str(no_url_column)
    )
    _one_clear_line(bad, "must name a 'url' column")
    listed = _run("--database-url", sqlite_url, "campaigns", "list")
    assert listed.returncode == 0 and "no campaigns yet" in listed.stdout


def _options(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, str]]:
    """Every option of a parser and its sub-commands, with its help as shown; asserts each
    has help and shows its default."""
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _options(child, f"{path} {name}")
        elif action.option_strings and action.dest != "help":
            assert action.help, f"{path} {action.option_strings[0]} has no help"
            shown = formatter._expand_help(action)
            if not (action.default is None or action.default is False or action.default == []):
                assert "default" in shown, f"{path} {action.option_strings[0]}: {shown}"
            yield path, shown


def test_every_option_has_help_and_shows_its_default() -> None:
    from harvester.cli import _parser

    assert len(list(_options(_parser(), "harvester"))) > 40


def test_every_emulator_option_has_help_and_shows_its_default() -> None:
    from harvester.emulator.server import _parser

    assert len(list(_options(_parser(), "harvester emulator"))) > 20


def _helps(parser: argparse.ArgumentParser) -> Iterator[tuple[str, str]]:
    """Each command's and sub-command's --help (the top level's included), unwrapped."""
    yield parser.prog, " ".join(parser.format_help().split())
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _helps(child)


# What Python shows of a value, not what a user types: a tuple, list, dict or quoted string
# as a default, a Path's or an object's repr, an Enum member's name (Mode.DATED).
REPRS = re.compile(
    r"default:? [(\[{'\"]|\b(?:Pure)?(?:Posix|Windows)?Path\(|<\w[\w.]*[: ]|frozenset\("
    r"|\b[A-Z][A-Za-z]+\.[A-Z][A-Z0-9_]*\b"
)


def test_every_help_shows_its_defaults_as_they_are_typed() -> None:
    from harvester.cli import _parser
    from harvester.emulator.server import _parser as emulator_parser

    # The emulator's own parser replaces the stub `harvester emulator` hands its options to.
    helps = dict([*_helps(_parser()), *_helps(emulator_parser())])
    assert len(helps) > 25 and "harvester emulator" in helps and "harvester export" in helps
    leaks = {prog: found for prog, shown in helps.items() if (found := REPRS.findall(shown))}
    assert not leaks, leaks


def test_options_left_unset_on_purpose_still_name_the_default_they_get() -> None:
    """None in argparse, a real value later (the campaign's SizeRules, the config's rule)."""
    from harvester.cli import _parser
    from harvester.config import IN_FLIGHT_PER_PROCESS
    from harvester.imaging import SizeRules
    from harvester.sources.mapillary_records import DEFAULT_SIZE

    shown: dict[str, str] = {}

    def collect(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    collect(child, f"{path} {name}")
            elif action.option_strings:
                shown[f"{path} {action.option_strings[0]}"] = parser._get_formatter()._expand_help(
                    action
                )

    collect(_parser(), "harvester")
    sizes = SizeRules()
    for option, default in {
        "harvester run --concurrency": f"{IN_FLIGHT_PER_PROCESS} per process",
        "harvester submit urls --max-side": f"default: {sizes.max_side}",
        "harvester submit urls --min-side": f"default: {sizes.min_side}",
        "harvester submit flickr --max-side": f"default: {sizes.max_side}",
        "harvester submit flickr --min-side": f"default: {sizes.min_side}",
        "harvester submit flickr --license": "default: any",
        "harvester submit mapillary --size": f"default: {DEFAULT_SIZE}",
        "harvester submit mapillary --min-side": f"default: {sizes.min_side}",
    }.items():
        assert default in shown[option], (option, shown[option])


def test_a_rejected_url_line_never_shows_its_password(sqlite_url: str, tmp_path: Path) -> None:
    """A list line refused for its scheme or shape is named back, with no userinfo."""
    listing = tmp_path / "list.csv"
    listing.write_text(
        "url\n"
        "ftp://bob:Hunter2secret@files.example/a.jpg\n"
        "bob:Hunter2secret@img.example/b.jpg\n"
        "http://bob:Hunter2secret@/c.jpg\n"
        "sftp://bob:" + "Hunter2secret" * 10 + "@files.example/d.jpg\n"
        "gopher://img.example/e.jpg?token=Hunter2secret\n"
        "http://img.example/ok.jpg\n"
    )
    done = _run("--database-url", sqlite_url, "submit", "urls", "--campaign", "c", str(listing))
    assert done.returncode == 0, done.stderr
    assert "Hunter2" not in done.stderr + done.stdout, done.stderr
    assert "1 images queued" in done.stdout and "5 rows rejected" in done.stdout, done.stdout
    for line in range(2, 7):
        assert f"list.csv:{line}: " in done.stderr, (line, done.stderr)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--cell-m", "0"),
        ("--cell-m", "nan"),
        ("--cell-m", "-100"),
        ("--cell-m", "inf"),
        ("--cell-m", "1e-320"),  # east / cell_m was infinite: an OverflowError traceback
        ("--split", "nan,1,1"),
        ("--query-fraction", "2"),
        ("--query-fraction", "nan"),
        ("--buffer-m", "-1"),
        ("--buffer-m", "inf"),
        ("--buffer-m", "1e308"),  # squared, an OverflowError traceback
        ("--positive-m", "1e308"),
        ("--positive-m", "0"),
        ("--positive-m", "nan"),
        ("--min-distance", "-5"),
        ("--min-distance", "nan"),
        ("--duplicate-angle", "-1"),
        ("--drop-near-duplicates", "-3"),
        ("--drop-near-duplicates", "65"),
    ],
)
def test_an_export_number_out_of_its_range_is_refused_naming_the_option(
    sqlite_url: str, tmp_path: Path, option: str, value: str
) -> None:
    done = _run(
        "--database-url", sqlite_url, "export", "--campaign", "c", "--format", "vpr",
        "--out", str(tmp_path / "out"), f"{option}={value}",
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert f"argument {option}" in done.stderr.strip().splitlines()[-1], done.stderr


def test_a_quote_left_open_is_named_with_the_lines_it_swallowed(
    sqlite_url: str, tmp_path: Path
) -> None:
    """An unclosed quote makes csv read the following lines as one field: at the end of the
    file silently, or until the 128 KB field limit. Either way the lines are named."""
    short = tmp_path / "short.csv"
    short.write_text('url,title\nhttp://x.test/0.jpg,"oops\nhttp://x.test/1.jpg,a\n')
    long = tmp_path / "long.csv"
    rows = [f"http://x.test/{i}.jpg,t{i}" for i in range(1, 10_001)]
    long.write_text('url,title\nhttp://x.test/0.jpg,"oops\n' + "\n".join(rows) + "\n")
    fine = tmp_path / "fine.csv"
    fine.write_text(
        'url,title\nhttp://x.test/0.jpg,"two\nlines, ""quoted"""\nhttp://x.test/1.jpg,a\n'
    )
    # short.csv's one row is the one swallowed: nothing to queue, so it is refused (exit 2).
    for listing, end, code in ((short, 3, 2), (long, None, 0)):
        done = _run(
            "--database-url", sqlite_url, "submit", "urls", "--campaign", listing.stem,
            str(listing),
        )  # fmt: skip
        assert done.returncode == code, done.stderr
        assert f"{listing.name}:2: a quote opened on line 2 is not closed" in done.stderr, (
            done.stderr
        )
        if end is not None:
            assert f"lines 2-{end}" in done.stderr, done.stderr
    done = _run("--database-url", sqlite_url, "submit", "urls", "--campaign", "fine", str(fine))
    assert "2 images queued" in done.stdout and "0 rows rejected" in done.stdout, done.stdout


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "-inf", "soon"])
def test_a_grace_that_is_not_a_finite_number_of_seconds_is_refused(
    sqlite_url: str, value: str
) -> None:
    done = _run("--database-url", sqlite_url, "run", "--until-idle", f"--grace={value}")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "argument --grace" in done.stderr.strip().splitlines()[-1], done.stderr


@pytest.mark.parametrize(
    ("command", "option", "value"),
    [
        ("run", "--concurrency", "0"),
        ("run", "--concurrency", "nan"),
        ("run", "--concurrency", "2.5"),
        ("run", "--processes", "0"),
        ("run", "--processes", "inf"),
        ("run", "--processes", "99999999999999999999"),
        ("jobs list", "--limit", "0"),
        ("jobs list", "--limit", "99999999999999999999"),
        ("status", "--watch", "0"),
        ("status", "--watch", "-1"),
        ("status", "--watch", "nan"),
        ("status", "--watch", "inf"),
    ],
)
def test_a_count_or_interval_out_of_its_range_is_refused_naming_the_option(
    sqlite_url: str, tmp_path: Path, command: str, option: str, value: str
) -> None:
    """Each was taken before: NaN crashed the watch's timer, inf redrew never, a huge limit
    overflowed SQLite's LIMIT and a huge process count had `run` spin starting them."""
    done = _run(
        "--database-url", sqlite_url, "--storage-root", str(tmp_path), *command.split(),
        "--until-idle" if command == "run" else "--json", f"{option}={value}",
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert f"argument {option}: wants" in done.stderr.strip().splitlines()[-1], done.stderr


@pytest.mark.parametrize("url", ["garbage", "sqlite:garbage.db", "postgresql://u:hunter2@db:x/h"])
@pytest.mark.parametrize("command", ["status", "run"])
def test_a_database_url_that_is_not_one_is_refused_and_makes_no_file(
    tmp_path: Path, url: str, command: str
) -> None:
    """A value without scheme:// was an SQLite file of that name, made where the command ran."""
    done = subprocess.run(
        [*CLI, "--storage-root", str(tmp_path / "data"), command],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "HARVESTER_DATABASE_URL": url},
    )  # fmt: skip
    _one_clear_line(done, "database_url", "use sqlite:///path/to.db or postgresql://")
    assert "hunter2" not in done.stderr and "\\n" not in done.stderr, done.stderr
    assert list(tmp_path.iterdir()) == [], list(tmp_path.iterdir())


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path: Path) -> None:
    """`harvester status | head`: the pipe closes before the table is written."""
    db = f"sqlite:///{tmp_path / 'h.db'}"
    assert _run("--database-url", db, "db", "upgrade").returncode == 0
    reader, writer = os.pipe()
    os.close(reader)  # closed before the program writes a byte
    with os.fdopen(writer, "w") as stdout:
        done = subprocess.run(
            [*CLI, "--database-url", db, "status"],
            stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=120, env=os.environ,
        )  # fmt: skip
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    assert done.returncode == 141


@pytest.mark.parametrize("command", ["status", "dashboard"])
def test_a_password_in_the_database_urls_query_is_never_shown(command: str) -> None:
    """asyncpg takes ?password= as well as user:password@: the URL shown in the error showed
    it, and the dashboard did not check the database first (a traceback of 175 lines)."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        done = _run(
            "--database-url", f"postgresql://ops@127.0.0.1:{port}/x?password=hunter2secret",
            command,
        )  # fmt: skip
    _one_clear_line(done, f"127.0.0.1:{port}/x?password=REDACTED", "refused", "--database-url")
    assert "hunter2" not in done.stderr


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("foo=bar", "unexpected keyword argument 'foo'"),
        ("command_timeout=abc", "invalid command_timeout value"),
        ("prepared_statement_cache_size=abc", "invalid literal for int()"),
        ("ssl=bogus", "parameter must be one of: disable"),
    ],
)
def test_a_query_parameter_the_driver_does_not_take_is_one_line(
    postgres_url: str, query: str, words: str
) -> None:
    """Each was a TypeError or ValueError traceback from the driver, or its DBAPIError."""
    url = make_url(postgres_url).set(password="hunter2secret")
    done = _run("--database-url", f"{url.render_as_string(hide_password=False)}?{query}", "status")
    _one_clear_line(done, "cannot use the database", words)
    assert "hunter2" not in done.stderr


def test_libpqs_sslmode_is_taken_as_asyncpgs_ssl(postgres_url: str) -> None:
    """`?sslmode=` (what psql and most hosting panels write) failed every connection."""
    done = _run("--database-url", f"{postgres_url}?sslmode=disable", "status")
    assert done.returncode == 0 and "no campaigns yet" in done.stdout, done.stderr
    refused = _run("--database-url", f"{postgres_url}?sslmode=require", "status")
    _one_clear_line(refused, "rejected SSL upgrade")  # the test server speaks no TLS


def test_an_sqlite_url_with_a_user_or_password_is_refused_without_showing_it(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [*CLI, "--database-url", "sqlite://:pw@/x.db", "status"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=os.environ,
    )  # fmt: skip
    _one_clear_line(done, "an SQLite URL names a file, not a host or user")
    assert ":pw@" not in done.stderr and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (["jobs", "show", "99999999999999999999"], "id"),
        (["jobs", "show", "0"], "id"),
        (["jobs", "retry", "--id", "1", "9223372036854775808"], "--id"),
        (["report", "--campaign", "c", "--out", "r", "--near-distance", "-1"], "--near-distance"),
        (["report", "--campaign", "c", "--out", "r", "--near-distance", "65"], "--near-distance"),
    ],
)
def test_a_row_id_or_hash_distance_out_of_its_range_is_refused_naming_it(
    database_url: str, tmp_path: Path, args: list[str], argument: str
) -> None:
    """An id past 64 bits was the driver's error (OverflowError on SQLite, a DBAPIError
    quoting the SQL on PostgreSQL); a report took any distance, as export does not."""
    done = subprocess.run(
        [*CLI, "--database-url", database_url, *args],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=os.environ,
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert f"argument {argument}: wants a whole number" in done.stderr.splitlines()[-1], done.stderr


def test_a_mapillary_bbox_that_rounds_to_nothing_is_refused_at_submit(sqlite_url: str) -> None:
    """Bounds are kept to 1e-7 degrees: a box thinner than that was queued as a tile of no
    area, and its task failed when the daemon ran it."""
    bbox = "4.3017,50.8003,4.30170000001,50.80030000001"
    done = _run(
        "--database-url", sqlite_url, "submit", "mapillary", "--campaign", "m", "--bbox", bbox
    )
    _one_clear_line(done, "bbox sides must be at least 1e-7 degrees")
    listed = _run("--database-url", sqlite_url, "campaigns", "list")
    assert listed.returncode == 0 and "no campaigns yet" in listed.stdout


@pytest.mark.parametrize("revision", ["nosuch", "0999"])
def test_a_downgrade_to_a_revision_that_is_not_one_is_refused_and_changes_nothing(
    database_url: str, revision: str
) -> None:
    """Alembic's CommandError was a traceback of 90 lines."""
    assert _run("--database-url", database_url, "db", "upgrade").returncode == 0
    done = _run("--database-url", database_url, "db", "downgrade", revision)
    _one_clear_line(done, f"cannot downgrade to {revision!r}", "Can't locate revision")

    async def revision_now() -> str | None:
        engine = create_engine(database_url)
        try:
            return await current_revision(engine)
        finally:
            await engine.dispose()

    assert asyncio.run(revision_now()) == head_revision()


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ("latin1.toml", "is not UTF-8 text"),
        ("folder", "is not a file"),  # it said "does not exist"
        ("/proc/self/mem", "cannot read config file /proc/self/mem"),  # an I/O error
    ],
)
def test_a_config_file_that_cannot_be_read_is_one_line_naming_it(
    tmp_path: Path, config: str, words: str
) -> None:
    (tmp_path / "latin1.toml").write_bytes("storage_root = 'donn\xe9es'\n".encode("latin-1"))
    (tmp_path / "folder").mkdir()
    done = subprocess.run(
        [*CLI, "--config", config, "status"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=os.environ,
    )  # fmt: skip
    _one_clear_line(done, words)


@pytest.mark.parametrize(
    ("bind", "words"),
    [
        (os.fsdecode(b"h\xff:8080"), "not a host name"),
        ("a" * 64 + ".example:8080", "not a host name"),  # a label IDNA cannot encode
        ("\u00b2", "--http wants HOST:PORT"),  # a digit to str.isdigit, not to int()
    ],
)
def test_an_http_address_that_is_not_one_is_refused_in_one_line(
    sqlite_url: str, bind: str, words: str
) -> None:
    done = _run("--database-url", sqlite_url, "dashboard", "--http", bind)
    _one_clear_line(done, words)


def test_the_emulator_on_a_port_in_use_says_so_in_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _run("emulator", "--port", str(port))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot listen on 127.0.0.1:{port}" in lines[0], lines


@pytest.mark.parametrize(
    ("option", "value"),
    [("--since", "0001-01-01T00:00+14:00"), ("--until", "9999-12-31T23:59-14:00")],
)
def test_an_export_bound_with_no_utc_instant_is_refused_naming_the_option(
    sqlite_url: str, tmp_path: Path, option: str, value: str
) -> None:
    """In UTC each falls in year 0 or 10000: an OverflowError traceback once images were
    compared with it."""
    done = _run(
        "--database-url", sqlite_url, "export", "--campaign", "c", "--format", "csv",
        "--out", str(tmp_path / "out"), f"{option}={value}",
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert f"argument {option}: {value!r} is outside the years 1 to 9999 in UTC" in last, last


def test_a_mapillary_capture_range_starting_in_the_future_is_refused_at_submit(
    sqlite_url: str,
) -> None:
    """It was queued, and the daemon searched the sequence for no image (Flickr's upload
    range already refuses this)."""
    done = _run(
        "--database-url", sqlite_url, "submit", "mapillary", "--campaign", "m",
        "--sequence", "abc", "--min-captured-at", "2999-01-01",
    )  # fmt: skip
    _one_clear_line(done, "--min-captured-at 2999-01-01 is in the future")
    listed = _run("--database-url", sqlite_url, "campaigns", "list")
    assert listed.returncode == 0 and "no campaigns yet" in listed.stdout


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HARVESTER_FLICKR_API_KEY", os.fsdecode(b"0e1b2a3c\xff")),  # crashed the daemon
        ("HARVESTER_MAPILLARY_TOKEN", "MLY|4242|0e1b2a3c4d5e\r"),  # every request failed
        ("HARVESTER_DASHBOARD_TOKEN", "s3cret-token\n"),
    ],
)
def test_a_secret_that_is_not_printable_text_is_refused_without_showing_it(
    sqlite_url: str, variable: str, value: str
) -> None:
    done = subprocess.run(
        [*CLI, "--database-url", sqlite_url, "status"],
        capture_output=True, text=True, timeout=120, env={**os.environ, variable: value},
    )  # fmt: skip
    _one_clear_line(done, variable.removeprefix("HARVESTER_").lower(), "control character")
    assert value.strip()[:8] not in done.stderr, done.stderr


@pytest.mark.parametrize(
    "url",
    [
        b"postgresql://ops\xff@127.0.0.1:1/x",
        b"postgresql://ops@127.0.0.1:1/h\xff",
        b"sqlite:///h\xff.db",
    ],
    ids=["user", "database", "sqlite-file"],
)
def test_a_database_url_with_an_undecodable_byte_is_refused_in_one_line(
    tmp_path: Path, url: bytes
) -> None:
    """asyncpg failed with 121 lines of AttributeError, sqlite3 with UnicodeEncodeError."""
    done = subprocess.run(
        [*CLI, "--database-url", os.fsdecode(url), "status"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=os.environ,
    )  # fmt: skip
    _one_clear_line(done, "database_url: the database URL holds a byte that is not UTF-8")
    assert list(tmp_path.iterdir()) == []
