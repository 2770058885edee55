"""Operator files as a careless user or an attacker writes them: no row lost unreported,
no traceback, memory that does not follow the file's size."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from defaults import MAX_ATTEMPTS
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.models import Image
from harvester.outcomes import MAX_ERROR_CHARS, Failure
from harvester.sources.urls import BATCH, UrlCampaign, submit_urls

CLI = [sys.executable, "-m", "harvester.cli"]


async def test_nan_and_infinity_in_parquet_extras_become_null_and_every_row_is_queued(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    n = 2500
    table = pa.table(
        {
            "url": [f"http://cdn.test/{i}.jpg" for i in range(n)],
            "id": [str(i) for i in range(n)],
            "lat": [math.nan if i % 3 == 0 else 45.0 for i in range(n)],
            "lon": [math.nan if i % 3 == 0 else 5.0 for i in range(n)],
            "score": [[math.nan, math.inf, -math.inf, 0.5][i % 4] for i in range(n)],
        }
    )
    path = tmp_path / "frame.parquet"
    pq.write_table(table, path, row_group_size=700)

    report = await submit_urls(engine, UrlCampaign("nan", path), max_attempts=MAX_ATTEMPTS)

    assert (report.rows, report.images_added, report.problems) == (n, n, ())
    async with engine.connect() as connection:
        rows = (await connection.execute(select(Image.provider_id, Image.raw, Image.lat))).all()
    assert len(rows) == n
    scores = {row.provider_id.rsplit(":", 1)[1]: row.raw["score"] for row in rows}
    assert [scores[str(i)] for i in range(4)] == [None, None, None, 0.5]
    assert all(row.lat is None for row in rows if int(row.provider_id.rsplit(":", 1)[1]) % 3 == 0)


def _write(path: Path, rows: list[tuple[str, str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "url"])
        writer.writerows(rows)


async def test_repeated_ids_nul_bytes_and_huge_urls_are_each_reported_by_line(
    sqlite_engine: AsyncEngine, tmp_path: Path
) -> None:
    rows = [(f"p{i}", f"http://cdn.test/{i}.jpg") for i in range(BATCH + 200)]
    rows[5] = ("p0", "http://cdn.test/again.jpg")  # line 7 repeats line 2, same batch
    rows[BATCH + 100] = ("p1", "http://cdn.test/later.jpg")  # line 1102 repeats line 3
    rows[10] = ("p\0x", "http://cdn.test/nul.jpg")  # line 12
    rows[20] = ("big", "http://cdn.test/" + "y" * 20_000_000)  # line 22
    rows[30] = ("long", "http://cdn.test/" + "y" * 100_000)  # line 32
    path = tmp_path / "list.csv"
    _write(path, rows)

    report = await submit_urls(
        sqlite_engine, UrlCampaign("careless", path), max_attempts=MAX_ATTEMPTS
    )

    problems = sorted(report.problems, key=lambda p: int(p.split(":")[1]))
    assert problems[0] == "list.csv:7: duplicate id (first on line 2)"
    assert problems[1] == "list.csv:12: id contains a NUL byte"
    assert problems[2] == "list.csv:22: line longer than 1048576 characters"
    assert problems[3] == "list.csv:32: URL longer than 8192 characters (100016)"
    assert problems[4] == "list.csv:1102: duplicate id (first on line 3)"
    assert len(problems) == 5 and all(len(p) < 200 for p in problems)
    assert report.rows == report.images_added + report.images_known + len(report.problems)
    assert (report.images_added, report.images_known) == (len(rows) - 5, 0)
    async with sqlite_engine.connect() as connection:
        ids = set((await connection.execute(select(Image.provider_id))).scalars())
    assert not any("\0" in i or i.endswith(":px") for i in ids)


def test_an_error_message_is_capped_before_it_reaches_last_error() -> None:
    failure = Failure(1, "HTTP 404 from http://x.test/" + "y" * 20_000_000, retryable=False)
    assert len(failure.error) <= MAX_ERROR_CHARS
    assert failure.error.startswith("HTTP 404") and "20000028 characters" in failure.error


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    db = f"sqlite:///{tmp_path / 'h.db'}"
    return subprocess.run(
        [*CLI, "--database-url", db, *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("case", "args"),
    [
        ("empty upload range", ["flickr", "--min-upload-date", "2999-01-01"]),
        ("date out of range", ["flickr", "--max-upload-date", "9999-12-31"]),
        ("big sequence field", ["mapillary", "--sequence-csv", "seq.csv"]),
        ("url list of zeros", ["urls", "/dev/zero"]),
        ("sequences of zeros", ["mapillary", "--sequence-csv", "/dev/zero"]),
        ("queries of zeros", ["flickr", "--queries", "/dev/zero"]),
        ("binary url list", ["urls", "binary.csv"]),
    ],
)
def test_unusable_input_is_one_line_and_exit_2_not_a_traceback(
    tmp_path: Path, case: str, args: list[str]
) -> None:
    (tmp_path / "q.txt").write_text("glacier\n")
    (tmp_path / "seq.csv").write_text(
        "sequence_id,image_id,latitude,longitude\ns1," + "1" * 200_000 + ",1,2\n"
    )
    (tmp_path / "binary.csv").write_bytes(b"url\n" + bytes(range(256)) * 64)
    kind, *rest = args
    if kind == "flickr" and "--queries" not in rest:
        rest += ["--queries", str(tmp_path / "q.txt")]
    rest = [str(tmp_path / a) if a.endswith(".csv") else a for a in rest]
    done = subprocess.run(
        [*CLI, "--database-url", f"sqlite:///{tmp_path / 'h.db'}", "submit", kind,
         "--campaign", "c", *rest],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, (case, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, (case, done.stderr)
    assert lines[0].startswith("harvester: ")


PEAK_RSS = """
import resource, sys
from harvester.cli import main
code = main(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def _peak_rss_kb(tmp_path: Path, listing: Path) -> int:
    db = f"sqlite:///{tmp_path / (listing.stem + '.db')}"
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, "--database-url", db, "--log-level", "warning",
         "submit", "urls", "--campaign", listing.stem, str(listing)],
        capture_output=True, text=True, timeout=300, env={**os.environ},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return int(done.stderr.strip().splitlines()[-1])


def test_a_long_url_list_is_streamed_in_memory_that_does_not_follow_its_size(
    tmp_path: Path,
) -> None:
    """The README reports the full-size run (11 million lines); this is its small cousin.
    A whole-file read holds the text several times over; a stream holds one batch."""
    lines = 10_000
    pad = "p" * 4000  # 8 KB lines, an 80 MB file: read whole, it costs several times that
    small, big = tmp_path / "small.csv", tmp_path / "big.csv"
    for path, n in ((small, 10), (big, lines)):
        with path.open("w") as handle:
            handle.write("id,url,title\n")
            for i in range(n):
                handle.write(f"{i},http://cdn.test/{pad}/{i}.jpg,{pad}\n")
    base = _peak_rss_kb(tmp_path, small)
    grown = _peak_rss_kb(tmp_path, big) - base
    assert grown * 1024 < 40_000_000 + 60 * lines, f"RSS grew {grown} KB for {lines} lines"
