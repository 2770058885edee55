"""The emulator's image renderer: deterministic, photo-like, and as described."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from imaging_helpers import decode, rendered

from harvester.emulator.images import HOSTILE_KINDS, ImageRecipe, hostile, render


def test_same_recipe_gives_the_same_bytes_and_seeds_differ() -> None:
    recipe = ImageRecipe(seed=21, width=640, height=480)

    assert render(recipe) == render(recipe)
    assert render(recipe) != render(ImageRecipe(seed=22, width=640, height=480))


def test_photo_compresses_like_a_photo() -> None:
    data = rendered(ImageRecipe(seed=3, width=2048, height=1536))

    assert 300_000 <= len(data) <= 800_000
    im = decode(data)
    assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (2048, 1536))
    edge = np.asarray(im.crop((0, 0, 2048, 4)), dtype=float)
    assert edge.std(axis=1).mean() > 5  # texture reaches the border


@pytest.mark.parametrize(
    ("fields", "fmt", "mode"),
    [
        ({"fmt": "png"}, "PNG", "RGB"),
        ({"fmt": "webp"}, "WEBP", "RGB"),
        ({"cmyk": True}, "JPEG", "CMYK"),
        ({"progressive": True}, "JPEG", "RGB"),
    ],
)
def test_recipe_selects_format_and_mode(fields: dict[str, object], fmt: str, mode: str) -> None:
    im = decode(render(ImageRecipe(seed=1, width=320, height=240, **fields)))  # type: ignore[arg-type]

    assert (im.format, im.mode, im.size) == (fmt, mode, (320, 240))
    if fields.get("progressive"):
        assert im.info.get("progressive")


def test_orientation_is_stored_rotated_with_its_tag() -> None:
    im = decode(render(ImageRecipe(seed=1, width=320, height=240, exif_orientation=6)))

    assert im.size == (240, 320)
    assert im.getexif()[0x0112] == 6


def test_frames_are_flat_bands_inside_the_canvas() -> None:
    recipe = ImageRecipe(
        seed=2, width=400, height=300, fmt="png", frames=((10, (255, 0, 0)), (5, (0, 0, 255)))
    )
    px = np.asarray(decode(render(recipe)))

    assert (px[:10, :] == (255, 0, 0)).all() and (px[:, -10:] == (255, 0, 0)).all()
    assert (px[10:15, 10:-10] == (0, 0, 255)).all() and (px[-15:-10, 10:-10] == (0, 0, 255)).all()
    assert px[15:-15, 15:-15].std() > 10


def test_uniform_sky_covers_the_top_of_the_content() -> None:
    px = np.asarray(
        decode(render(ImageRecipe(seed=2, width=400, height=300, fmt="png", uniform_sky=True)))
    )

    sky = px[: 300 * 35 // 100]
    assert (sky == sky[0, 0]).all()
    assert px[200:].std() > 10


def test_hostile_bodies_are_what_they_claim() -> None:
    assert set(HOSTILE_KINDS) == {"truncated", "empty", "html", "bomb", "garbage"}
    truncated, ctype = hostile("truncated", 1)
    assert (
        ctype == "image/jpeg"
        and truncated.startswith(b"\xff\xd8")
        and b"\xff\xd9" not in truncated[-2:]
    )
    assert hostile("empty", 1) == (b"", "image/jpeg")
    html, ctype = hostile("html", 1)
    assert ctype == "image/jpeg" and html.lstrip().lower().startswith(b"<!doctype html")
    bomb, ctype = hostile("bomb", 1)
    width, height = struct.unpack(">II", bomb[16:24])
    assert ctype == "image/png" and len(bomb) < 4096 and width * height >= 40_000**2
    assert hostile("garbage", 1) == hostile("garbage", 1) != hostile("garbage", 2)


def test_unknown_hostile_kind_is_refused() -> None:
    with pytest.raises(ValueError):
        hostile("teapot", 1)
