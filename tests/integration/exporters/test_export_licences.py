"""What an export says and does about each image's licence, on a real harvest."""

from __future__ import annotations

from pathlib import Path

import pytest
from export_harvest import BY_NC, CC_BY, CC_BY_SA, OWN, OWN_TERMS, WRITTEN, Harvest, rows_of
from PIL import ExifTags
from PIL import Image as PILImage

from harvester.cli import main
from harvester.records import SubmitReport


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


def test_every_spelling_of_a_licence_is_credited_as_one_with_its_link(
    as_written: tuple[Harvest, SubmitReport], tmp_path: Path
):
    harvest, _ = as_written
    argv = ("export", "--campaign", "list", "--format", "attribution", "--out", str(tmp_path))
    assert main(harvest.argv(*argv)) == 0
    md = (tmp_path / "ATTRIBUTION.md").read_text()
    for shown, count in (
        (f"[CC BY 4.0]({CC_BY})", 3),
        (f"[CC BY-SA 4.0]({CC_BY_SA})", 3),
        (f"[CC BY-NC 4.0]({BY_NC})", 1),
        ("[CC0 1.0](https://creativecommons.org/publicdomain/zero/1.0/)", 1),
        ("All Rights Reserved", 2),
        (OWN, 1),
        ("unknown licence", 1),
    ):
        assert f"| {shown} | {count} |" in md
    credits = {r["license_id"]: r for r in rows_of(tmp_path / "attribution.csv")}
    assert set(credits) == {
        *("CC-BY-4.0", "CC-BY-SA-4.0", "CC-BY-NC-4.0", "CC0-1.0", "all-rights-reserved"),
        *(OWN, ""),
    }
    assert credits["CC-BY-NC-4.0"]["attribution"].endswith(f", CC BY-NC 4.0 ({BY_NC})")


def test_a_licence_too_long_to_store_and_not_known_is_refused_by_its_line(
    as_written: tuple[Harvest, SubmitReport],
):
    _, report = as_written
    (problem,) = report.problems
    assert problem.startswith(f"list.csv:{len(WRITTEN) + 1}: license longer than 40 characters")
    assert OWN_TERMS[:40] in problem and len(problem.splitlines()) == 1
    assert report.images_added == len(WRITTEN) - 1


def test_a_licence_named_by_any_spelling_selects_all_of_them_and_the_exif_links_it(
    as_written: tuple[Harvest, SubmitReport], tmp_path: Path
):
    harvest, _ = as_written
    argv = ("export", "--campaign", "list", "--format", "csv", "--out", str(tmp_path))
    assert (
        main(harvest.argv(*argv, "--license", "https://creativecommons.org/licenses/by/4.0")) == 0
    )
    rows = rows_of(tmp_path / "images.csv")
    assert [r["license_name"] for r in rows] == ["CC BY 4.0"] * 3
    with PILImage.open(harvest.root / rows[0]["path"]) as image:
        assert image.getexif()[ExifTags.Base.Copyright] == f"CC BY 4.0 ({CC_BY})"


def test_images_under_no_licence_are_counted_in_the_summary_and_credited_apart(
    as_written: tuple[Harvest, SubmitReport], tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    harvest, _ = as_written
    argv = ("export", "--campaign", "list", "--format", "attribution", "--out", str(tmp_path))
    assert main(harvest.argv(*argv)) == 0
    out = capsys.readouterr().out
    assert "4 of them are All Rights Reserved or of unknown licence" in out
    assert "--commercial-ok" in out
    md = (tmp_path / "ATTRIBUTION.md").read_text()
    assert "12 images: 8 under the licence named beside each, 4 with no licence granted" in md
    licensed, unlicensed = md.split("## Images with no licence granted")
    assert "may not be redistributed" in unlicensed and "Each is used under" not in unlicensed
    lines = [line for line in unlicensed.splitlines() if line.startswith("- `")]
    for name, count in (("All Rights Reserved", 2), (OWN, 1), ("unknown licence", 1)):
        assert sum(line.endswith(f", {name}") for line in lines) == count
    assert licensed.count("\n- `") == 8 and not any(line in licensed for line in lines)

    assert main(harvest.argv(*argv, "--commercial-ok")) == 0
    assert "unknown licence" not in capsys.readouterr().out
    assert "no licence granted" not in (tmp_path / "ATTRIBUTION.md").read_text()
