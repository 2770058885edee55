"""CSV cells a spreadsheet would run as formulas, short of a harvest that can carry them."""

from __future__ import annotations

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
