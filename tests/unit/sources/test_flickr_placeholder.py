"""Flickr's photo-unavailable placeholder is known by its redirect target and its bytes."""

from __future__ import annotations

from harvester.emulator.deleted import placeholder_png
from harvester.emulator.images import ImageRecipe, render
from harvester.sources.flickr_placeholder import is_placeholder, listed_placeholder

PHOTO = "https://live.staticflickr.com/65535/3000000001_abcdef0123_b.jpg"
PLACEHOLDER = "https://s.yimg.com/pw/images/en-us/photo_unavailable.png"


def test_a_redirect_to_photo_unavailable_is_the_placeholder_whatever_the_bytes() -> None:
    jpeg = render(ImageRecipe(1, 640, 480))
    assert is_placeholder(PHOTO, PLACEHOLDER, jpeg)
    assert is_placeholder(PHOTO, "https://combo.staticflickr.com/photo_unavailable_l.gif", jpeg)


def test_the_placeholder_bytes_served_in_place_of_a_jpeg_are_recognised_without_a_redirect() -> (
    None
):
    assert is_placeholder(PHOTO, PHOTO, placeholder_png())
    # Whatever its size and format: a sized URL is always a JPEG on Flickr.
    other = render(ImageRecipe(3, 1024, 683, fmt="png"))
    assert is_placeholder(PHOTO, PHOTO, other)
    assert is_placeholder(PHOTO, PHOTO, b"GIF89a\x00\x04\x00\x03" + bytes(40))


def test_real_photos_are_not_placeholders() -> None:
    assert not is_placeholder(PHOTO, PHOTO, render(ImageRecipe(1, 1024, 768)))
    png = render(ImageRecipe(2, 500, 374, fmt="png"))  # a PNG original of that very size
    assert not is_placeholder(PHOTO.replace("_b.jpg", "_o.png"), PHOTO, png)


def test_in_a_url_list_only_flickrs_own_size_names_are_judged_by_their_bytes() -> None:
    png = placeholder_png()
    assert listed_placeholder(PHOTO, PHOTO, png)
    assert listed_placeholder(PHOTO.replace("_b.jpg", "_3k.jpg"), PHOTO, png)
    assert listed_placeholder("https://example.org/a.jpg", PLACEHOLDER, png)
    # Any other site's `.jpg` may well be a PNG, and a Flickr photo is a photo.
    assert not listed_placeholder("https://example.org/street/0042.jpg", "", png)
    assert not listed_placeholder(PHOTO, PHOTO, render(ImageRecipe(1, 1024, 768)))
