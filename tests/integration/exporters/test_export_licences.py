"""What an export says and does about each image's licence, on a real harvest."""

from __future__ import annotations

from pathlib import Path

import pytest
from export_harvest import Harvest, rows_of

from harvester.cli import main


@pytest.mark.parametrize("flag", ["--commercial-ok", "--derivatives-ok"])
def test_licence_filters_keep_a_url_lists_open_licences_and_drop_all_rights_reserved(
    harvest: Harvest, tmp_path: Path, flag: str
):
    out = tmp_path / "out"
    argv = ("export", "--campaign", "street", "--format", "csv", "--out", str(out), flag)
    assert main(harvest.argv(*argv)) == 0
    kept = sorted(r["license_id"] for r in rows_of(out / "images.csv"))
    listed = [r["license"] for r in harvest.url_rows]
    assert kept == sorted(x for x in listed if x != "all-rights-reserved")
    assert {"CC-BY-4.0", "CC-BY-SA-4.0", "CC0-1.0"} <= set(kept)
