"""ATTRIBUTION.md shows what strangers wrote (a title, an owner's name, a provider's licence
name and URL, a URL list's URL and id) as text: it starts no heading or table row of its own
and links nowhere but the http(s) pages and licences it credits."""

from __future__ import annotations

import re

from harvester.exporters.attribution import attribution_md

CC_BY = "https://creativecommons.org/licenses/by/4.0/"
HOSTILE = "Harbour\n# Owned\n| forged | 9 |\r\n\u2028- `x`: [x](javascript:alert(1))"
# An inline link's destination, as CommonMark reads it: from `](` (its `]` not escaped) to
# the first space or `)`.
LINK = re.compile(r"(?<!\\)\]\(([^)\s]*)")


def _row(**given: str) -> dict[str, str]:
    row = {
        "file": "urls/list/00000/a.jpg", "provider": "urls", "provider_id": "list:a",
        "title": "Harbour", "author": "anna", "page_url": "https://example.org/a.jpg",
        "license_id": "CC-BY-4.0", "license_name": "CC BY 4.0", "license_url": CC_BY,
        "attribution": "",
    }  # fmt: skip
    return {**row, **given}


def _links(md: str) -> list[str]:
    return LINK.findall(md)


def test_a_line_break_in_a_title_author_or_licence_name_starts_no_heading_or_table_row():
    md = attribution_md([_row(title=HOSTILE, author=HOSTILE, license_name=HOSTILE)]).decode()
    lines = md.splitlines()
    assert [line for line in lines if line.startswith("#")] == [
        "# Attribution",
        "## By licence",
        "## Images",
    ]
    table = lines[lines.index("|---|---|") + 1 : lines.index("", lines.index("|---|---|"))]
    assert len(table) == 1 and table[0].endswith(" | 1 |")
    assert [line for line in lines if line.startswith("- ")] == [
        line for line in lines if "Harbour" in line and not line.startswith("|")
    ]
    assert _links(md) == [CC_BY, "https://example.org/a.jpg", CC_BY]


def test_a_licence_url_that_is_not_http_is_named_but_not_linked():
    rows = [_row(license_name="Free", license_url="javascript:alert(document.cookie)")]
    md = attribution_md(rows).decode()
    assert "| Free | 1 |" in md and md.rstrip().endswith(", Free")
    assert _links(md) == ["https://example.org/a.jpg"]


def test_a_url_lists_url_or_id_cannot_end_its_link_and_start_another():
    page = "https://example.org/a b)[x](javascript:alert(2))<b>"
    rows = [_row(page_url=page), _row(file="b.jpg", title="", provider_id="](javascript:x)")]
    md = attribution_md(rows).decode()
    encoded = "https://example.org/a%20b%29[x]%28javascript:alert%282%29%29%3Cb%3E"
    assert _links(md) == [CC_BY, encoded, CC_BY, "https://example.org/a.jpg", CC_BY]
    assert "[urls image \\](javascript:x)](https://example.org/a.jpg)" in md
