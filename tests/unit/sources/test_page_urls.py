"""A photo's page URL, built from a provider's ids: whatever an id holds, the link stays on
the photo's own page (the ids a provider really sends come out as before)."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from harvester.sources.pages import page_url


def test_a_flickr_owner_or_photo_id_cannot_move_the_page_link_or_end_it():
    owner, photo = "a/../../people/b) [c](javascript:d)", "5/../x?y#z"
    url = page_url("flickr", photo, {"owner": owner}, None)
    assert url is not None
    parts = urlsplit(url)
    assert (parts.netloc, parts.query, parts.fragment) == ("www.flickr.com", "", "")
    assert [unquote(p) for p in parts.path.split("/")] == ["", "photos", owner, photo]
    assert not set(" ()[]") & set(url)


def test_a_flickr_nsid_and_a_mapillary_id_give_the_page_urls_they_always_did():
    assert page_url("flickr", "53012345678", {"owner": "12345678@N00"}, None) == (
        "https://www.flickr.com/photos/12345678@N00/53012345678"
    )
    assert page_url("mapillary", "100355743596355", None, None) == (
        "https://www.mapillary.com/app/?pKey=100355743596355"
    )


def test_a_mapillary_id_cannot_add_a_parameter_or_fragment_to_its_page_link():
    url = page_url("mapillary", "1&utm=x#top", None, None)
    assert url == "https://www.mapillary.com/app/?pKey=1%26utm%3Dx%23top"
