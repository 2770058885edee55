"""The report's figures draw a label as typed: a provider's licence name or a campaign's
query may hold `$`, which matplotlib would otherwise read as mathtext."""

from __future__ import annotations

from harvester.exporters.figures import FigureData
from harvester.exporters.report import figures


def test_labels_holding_dollar_signs_are_drawn_and_a_malformed_formula_fails_no_figure():
    data = FigureData(
        "c",
        3,
        per_month=[("2023-07", 3)],
        licences=[("see $\\foo{$ terms", 2), ("$5 or $6", 1)],
        queries=[("price $\\frac{1}{$", {"stored": 3})],
        outcomes=[("stored", "", 3)],
    )
    drawn = figures(data)
    assert [name for name, _, _ in drawn][1:4] == ["captures.png", "licences.png", "queries.png"]
    assert all(png.startswith(b"\x89PNG") for _, _, png in drawn)
