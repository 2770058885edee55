"""What each Flickr and Mapillary licence allows, read from its name and URL."""

from __future__ import annotations

import pytest

from harvester.emulator.flickr_api import LICENSES
from harvester.exporters.licences import commercial_ok, derivatives_ok

# Flickr's licence ids -> (commercial use, derivatives), from the licences' own terms.
FLICKR = {
    0: (False, False),  # All Rights Reserved
    1: (False, True),  # BY-NC-SA
    2: (False, True),  # BY-NC
    3: (False, False),  # BY-NC-ND
    4: (True, True),  # BY
    5: (True, True),  # BY-SA
    6: (True, False),  # BY-ND
    7: (True, True),  # No known copyright restrictions
    8: (True, True),  # United States Government Work
    9: (True, True),  # CC0
    10: (True, True),  # Public Domain Mark
}


@pytest.mark.parametrize(("licence_id", "name", "url"), LICENSES)
def test_flickr_licences(licence_id: int, name: str, url: str):
    assert (commercial_ok(name, url), derivatives_ok(name, url)) == FLICKR[licence_id]


def test_mapillary_cc_by_sa_allows_both():
    url = "https://creativecommons.org/licenses/by-sa/4.0/"
    assert commercial_ok("CC BY-SA 4.0", url) and derivatives_ok("CC BY-SA 4.0", url)


def test_an_unknown_licence_allows_nothing():
    assert not commercial_ok("some licence", None) and not derivatives_ok(None, None)
