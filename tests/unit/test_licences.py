"""What each Flickr and Mapillary licence allows, read from its name and URL, and the one
name and URL of each way a URL list writes a licence."""

from __future__ import annotations

import pytest

from harvester.emulator.flickr_api import LICENSES
from harvester.licences import (
    FLICKR_LICENCES,
    commercial_ok,
    derivatives_ok,
    granted,
    known,
    licence_of,
    license_matches,
)

FLICKR_BY_URL = "https://creativecommons.org/licenses/by/2.0/"
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
    11: (True, True),  # CC BY 4.0
    12: (True, True),  # CC BY-SA 4.0
    13: (True, False),  # CC BY-ND 4.0
    14: (False, True),  # CC BY-NC 4.0
    15: (False, True),  # CC BY-NC-SA 4.0
    16: (False, False),  # CC BY-NC-ND 4.0
}


@pytest.mark.parametrize(("licence_id", "name", "url"), LICENSES)
def test_flickr_licences(licence_id: int, name: str, url: str):
    assert (commercial_ok(name, url), derivatives_ok(name, url)) == FLICKR[licence_id]


def test_mapillary_cc_by_sa_allows_both():
    url = "https://creativecommons.org/licenses/by-sa/4.0/"
    assert commercial_ok("CC BY-SA 4.0", url) and derivatives_ok("CC BY-SA 4.0", url)


def test_an_unknown_licence_allows_nothing():
    assert not commercial_ok("some licence", None) and not derivatives_ok(None, None)


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("CC-BY-4.0", ("CC-BY-4.0", "CC BY 4.0", "https://creativecommons.org/licenses/by/4.0/")),
        ("CC BY 4.0", ("CC-BY-4.0", "CC BY 4.0", "https://creativecommons.org/licenses/by/4.0/")),
        ("cc-by-nc-sa-4.0", ("CC-BY-NC-SA-4.0", "CC BY-NC-SA 4.0",
                             "https://creativecommons.org/licenses/by-nc-sa/4.0/")),
        ("CC-BY-SA-2.0", ("CC-BY-SA-2.0", "CC BY-SA 2.0",
                          "https://creativecommons.org/licenses/by-sa/2.0/")),
        ("https://creativecommons.org/licenses/by-nc/4.0/",
         ("CC-BY-NC-4.0", "CC BY-NC 4.0", "https://creativecommons.org/licenses/by-nc/4.0/")),
        ("http://creativecommons.org/licenses/by-nc/4.0",
         ("CC-BY-NC-4.0", "CC BY-NC 4.0", "https://creativecommons.org/licenses/by-nc/4.0/")),
        ("creativecommons.org/licenses/by-nd/4.0/deed.en",
         ("CC-BY-ND-4.0", "CC BY-ND 4.0", "https://creativecommons.org/licenses/by-nd/4.0/")),
        ("https://creativecommons.org/licenses/by/3.0/de/legalcode",
         ("CC-BY-3.0-DE", "CC BY 3.0 DE", "https://creativecommons.org/licenses/by/3.0/de/")),
        ("CC0-1.0", ("CC0-1.0", "CC0 1.0", "https://creativecommons.org/publicdomain/zero/1.0/")),
        ("https://creativecommons.org/publicdomain/zero/1.0/deed.fr",
         ("CC0-1.0", "CC0 1.0", "https://creativecommons.org/publicdomain/zero/1.0/")),
        ("https://creativecommons.org/publicdomain/mark/1.0/", ("CC-PDM-1.0",
         "Public Domain Mark 1.0", "https://creativecommons.org/publicdomain/mark/1.0/")),
        ("All Rights Reserved", ("all-rights-reserved", "All Rights Reserved", None)),
        ("all-rights-reserved", ("all-rights-reserved", "All Rights Reserved", None)),
    ],
)  # fmt: skip
def test_each_spelling_of_a_licence_has_one_id_name_and_url(written: str, canonical: tuple):
    licence = known(written)
    assert licence is not None and (licence.id, licence.name, licence.url) == canonical


@pytest.mark.parametrize(
    "written",
    ["", "some licence", "CC BY-SA", "CC BY 4.0 DE", "CC BY 3.0 license", "CC BY-XX 4.0", "GFDL"],
)
def test_text_that_names_no_licence_for_sure_is_not_read_as_one(written: str):
    assert known(written) is None


def test_licence_filter_takes_any_spelling_of_a_licence():
    assert license_matches(["https://creativecommons.org/licenses/by/4.0"], "CC BY 4.0")
    assert license_matches(["cc-by-2.0"], "4", "Attribution License", FLICKR_BY_URL)
    assert not license_matches(["CC-BY-SA-4.0"], "CC-BY-4.0")


@pytest.mark.parametrize(("licence_id", "name", "url"), LICENSES)
def test_every_flickr_licence_but_all_rights_reserved_grants_reuse(
    licence_id: int, name: str, url: str
):
    assert granted(name, url) == (licence_id != 0)
    assert not granted(None, None) and not granted("Our own terms", None)


def test_flickrs_licences_without_a_getinfo_row_are_those_getinfo_answers():
    """The fallback agrees with the emulator's table, recorded from api.flickr.com."""
    assert {str(i): (name, url) for i, name, url in LICENSES} == FLICKR_LICENCES


def test_a_flickr_id_with_no_licences_row_is_credited_by_flickrs_name_and_link():
    assert licence_of("flickr", "4", None, None) == ("CC BY 2.0", FLICKR_BY_URL)
    assert licence_of("flickr", "0", None, None)[0] == "All Rights Reserved"


def test_a_licences_row_wins_over_flickrs_list():
    row = ("Attribution License", "https://creativecommons.org/licenses/by/2.0/")
    assert licence_of("flickr", "4", *row) == row
    assert licence_of("flickr", "0", "All Rights Reserved", None) == ("All Rights Reserved", None)


@pytest.mark.parametrize(("provider", "licence_id"), [("flickr", "17"), ("urls", "4")])
def test_an_id_flickr_does_not_list_stays_bare(provider: str, licence_id: str):
    assert licence_of(provider, licence_id, None, None) == (licence_id, None)
