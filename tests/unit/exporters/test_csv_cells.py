"""CSV cells a spreadsheet would run as formulas, short of a harvest that can carry them."""

from __future__ import annotations

import csv
import io

from harvester.exporters.tables import TEXT_COLUMNS, csv_bytes


def test_a_text_cell_starting_with_a_tab_or_carriage_return_is_quoted_and_numbers_are_not():
    # A URL list's cells are stripped on reading: a provider's title may still start so.
    rows = [{"title": "\tcmd", "owner": "\r=1", "lat": -1.5, "heading": -90.0}]
    written = csv_bytes(rows, ("title", "owner", "lat", "heading"), text=("title", "owner"))
    assert written.startswith(b"title,owner,lat,heading\n'\tcmd,")
    assert b"'\r=1" in written and written.endswith(b",-1.5,-90.0\n")


def test_only_the_tables_text_columns_are_guarded():
    assert {"title", "owner", "owner_name", "tags", "license_name"} <= set(TEXT_COLUMNS)
    assert not {"lat", "lon", "heading", "width", "captured_at"} & set(TEXT_COLUMNS)


def test_a_bare_carriage_return_inside_a_cell_does_not_split_its_row():
    # csv.writer quotes only for the line end it writes ("\n"); a reader that takes a CR
    # for a line end (a spreadsheet, universal newlines) would end the row inside the title.
    rows = [
        {"title": "Harbour\rat dusk", "owner": "anna", "lat": 1.5},
        {"title": "Plain", "owner": "ben", "lat": -2.0},
    ]
    written = csv_bytes(rows, ("title", "owner", "lat"), text=("title", "owner"))
    read = list(csv.reader(io.StringIO(written.decode("utf-8"), newline=None)))
    assert read == [
        ["title", "owner", "lat"],
        ["Harbour\nat dusk", "anna", "1.5"],
        ["Plain", "ben", "-2.0"],
    ]
    # Only the cell holding one is quoted.
    assert b'\n"Harbour\rat dusk",anna,1.5\nPlain,ben,-2.0\n' in written
