"""A URL list whose file name is not UTF-8 (Linux allows any bytes; Python reads each
undecodable one as a lone surrogate) is a campaign like any other on both databases."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import pytest
from cli_runner import cli, cli_out

from harvester.emulator import RunningEmulator
from harvester.worker.daemon import run_daemon

NAME = os.fsdecode(b"list\xff.csv")  # "list\udcff.csv"
STORED_NAME = "list\ufffd.csv"  # as every text column and JSON document stores it


def _write_list(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


async def test_a_url_list_named_with_an_undecodable_byte_is_submitted_harvested_and_exported(
    database_url: str,
    tmp_path: Path,
    emulator: RunningEmulator,
    quick_settings: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = emulator.world.url_list(3, base_url=emulator.base_url, hostile=False)
    listing = tmp_path / NAME
    _write_list(listing, rows)
    settings = quick_settings(database_url)
    db = ("--database-url", database_url, "--storage-root", str(settings.storage_root))

    code, out, err = await cli(capsys, *db, "submit", "urls", "--campaign", "odd", str(listing))
    assert code == 0 and "Traceback" not in err, err
    assert "3 images queued" in out
    again = await cli_out(capsys, *db, "submit", "urls", "--campaign", "odd", str(listing))
    assert "3 already known" in again  # resumed, not refused as other settings

    await run_daemon(settings, until_idle=True)
    status = json.loads(await cli_out(capsys, *db, "status", "--json"))
    assert [(c["name"], c["images"]) for c in status["campaigns"]] == [("odd", {"stored": 3})]
    assert STORED_NAME in await cli_out(capsys, *db, "campaigns", "show", "odd")

    out_dir = tmp_path / "export"
    await cli_out(
        capsys, *db, "export", "--campaign", "odd", "--format", "jsonl", "--out", str(out_dir)
    )
    (exported,) = out_dir.glob("*.jsonl")
    records = [json.loads(line) for line in exported.read_text().splitlines()]
    assert sorted(r["title"] for r in records) == sorted(r["title"] for r in rows)
    assert {hit["query"] for r in records for hit in r["hits"]} == {STORED_NAME}
