"""Frame removal: real frames go with a small margin (within 2 px per side), content never."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from imaging_helpers import cut, decode, encode
from PIL import Image, ImageDraw

from harvester.imaging import Metadata, SizeRules, detect_frame, fit, process

WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
RED = (180, 30, 40)
GREY = (128, 128, 128)
NO_FRAME = (0, 0, 0, 0)

Frames = tuple[tuple[int, tuple[int, int, int]], ...]


def assert_frame(found: tuple[int, int, int, int], expected: tuple[int, int, int, int]) -> None:
    for side, got, want in zip(("top", "right", "bottom", "left"), found, expected, strict=True):
        assert abs(got - want) <= 2, f"{side}: removed {got}, frame is {want} ({found})"


@pytest.mark.parametrize(
    ("frames", "size"),
    [
        (((30, WHITE),), (2048, 1536)),
        (((13, BLACK),), (2048, 1536)),
        (((3, BLACK),), (1000, 750)),
        (((60, GREY),), (1536, 2048)),
        (((20, WHITE), (7, BLACK)), (1000, 750)),
        (((40, RED), (10, WHITE), (4, BLACK)), (3000, 2000)),
    ],
)
def test_frame_of_known_width_is_removed_on_every_side(
    photo: Callable[..., bytes], frames: Frames, size: tuple[int, int]
) -> None:
    data = photo(width=size[0], height=size[1], frames=frames)
    width = cut(sum(band for band, _ in frames), size)

    result = process(data, SizeRules(), Metadata())

    assert_frame(result.frame, (width, width, width, width))
    inner = (size[0] - 2 * width, size[1] - 2 * width)
    assert max(result.width, result.height) <= 1024
    assert abs(result.width / result.height - inner[0] / inner[1]) < 0.01


def test_frame_around_a_same_coloured_sky_leaves_the_sky(photo: Callable[..., bytes]) -> None:
    data = photo(seed=0, width=2048, height=1536, frames=((30, WHITE),), uniform_sky=True)

    width = cut(30, (2048, 1536))
    assert_frame(process(data, SizeRules(), Metadata()).frame, (width,) * 4)


def test_frameless_photo_is_not_cropped(photo: Callable[..., bytes]) -> None:
    for seed in range(3):
        result = process(photo(seed=seed), SizeRules(), Metadata())
        assert result.frame == NO_FRAME
        assert (result.width, result.height) == (1000, 750)


def _sky(im: Image.Image) -> None:
    ImageDraw.Draw(im).rectangle((0, 0, im.width, im.height * 35 // 100), fill=(176, 204, 232))


def _white_wall_left(im: Image.Image) -> None:
    ImageDraw.Draw(im).rectangle((0, 0, im.width * 3 // 10, im.height), fill=(240, 240, 236))


def _sky_and_snow(im: Image.Image) -> None:
    draw = ImageDraw.Draw(im)
    draw.rectangle((0, 0, im.width, im.height // 3), fill=WHITE)
    draw.rectangle((0, im.height * 4 // 5, im.width, im.height), fill=WHITE)


def _dark_background_two_edges(im: Image.Image) -> None:
    draw = ImageDraw.Draw(im)
    draw.rectangle((0, 0, im.width // 5, im.height), fill=(12, 12, 12))
    draw.rectangle((0, im.height * 7 // 10, im.width, im.height), fill=(12, 12, 12))


def _studio_backdrop(im: Image.Image) -> None:
    subject = im.crop((im.width // 4, im.height // 4, im.width * 3 // 4, im.height))
    im.paste((200, 200, 200), (0, 0, im.width, im.height))
    im.paste(subject, (im.width // 4, im.height // 4))


def _floating_subject(im: Image.Image) -> None:
    subject = im.crop((im.width // 4, im.height // 4, im.width * 3 // 4, im.height * 3 // 4))
    im.paste(WHITE, (0, 0, im.width, im.height))
    im.paste(subject, (im.width // 4, im.height // 4))


@pytest.mark.parametrize(
    "paint",
    [
        _sky,
        _white_wall_left,
        _sky_and_snow,
        _dark_background_two_edges,
        _studio_backdrop,
        _floating_subject,
    ],
)
def test_uniform_content_touching_edges_is_never_cropped(
    photo_pixels: Callable[..., Image.Image], paint: Callable[[Image.Image], None]
) -> None:
    for seed in (1, 2):
        im = photo_pixels(seed=seed, width=1600, height=1200)
        paint(im)

        result = process(encode(im, quality=90), SizeRules(), Metadata())

        assert result.frame == NO_FRAME, paint.__name__
        assert (result.width, result.height) == fit(1600, 1200, 1024)


def test_flat_colour_image_is_not_mistaken_for_a_frame() -> None:
    data = encode(Image.new("RGB", (1200, 900), (90, 120, 200)))

    assert process(data, SizeRules(), Metadata()).frame == NO_FRAME


def test_band_wider_at_top_and_bottom_is_followed(
    photo_pixels: Callable[..., Image.Image],
) -> None:
    im = photo_pixels(seed=4, width=1200, height=900)
    draw = ImageDraw.Draw(im)
    draw.rectangle((0, 0, 1199, 899), outline=WHITE, width=20)
    draw.rectangle((0, 0, 1199, 29), fill=WHITE)
    draw.rectangle((0, 870, 1199, 899), fill=WHITE)

    wide, narrow = cut(30, (1200, 900)), cut(20, (1200, 900))
    assert_frame(process(encode(im), SizeRules(), Metadata()).frame, (wide, narrow, wide, narrow))


def test_detect_frame_is_exact_on_lossless_pixels(photo: Callable[..., bytes]) -> None:
    im = decode(photo(fmt="png", frames=((9, WHITE), (5, RED)))).convert("RGB")

    assert detect_frame(im) == (18, 18, 18, 18)  # 9 + 5, and a margin of 0.5% of 750 px


def test_frames_are_kept_when_stripping_is_off(photo: Callable[..., bytes]) -> None:
    data = photo(frames=((30, WHITE),))

    result = process(data, SizeRules(strip_frames=False), Metadata())

    assert result.frame == NO_FRAME
    assert (result.width, result.height) == (1000, 750)
    assert decode(result.jpeg).getpixel((5, 5)) == pytest.approx(WHITE, abs=6)
