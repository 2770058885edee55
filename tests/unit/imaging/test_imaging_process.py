"""process(): size rules, orientation, colour modes, quality and picklability."""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
from imaging_helpers import decode, encode, psnr
from PIL import Image

from harvester.imaging import (
    ImagingError,
    Metadata,
    Processed,
    SizeRules,
    TooSmall,
    process,
)

RULES = SizeRules()
NO_META = Metadata()


def assert_rgb_jpeg(result: Processed) -> Image.Image:
    out = decode(result.jpeg)
    assert out.format == "JPEG"
    assert out.mode == "RGB"
    assert out.size == (result.width, result.height)
    return out


@pytest.mark.parametrize(("width", "height"), [(499, 800), (800, 499), (300, 200)])
def test_image_below_the_minimum_side_is_skipped_with_its_size(
    photo: Callable[..., bytes], width: int, height: int
) -> None:
    with pytest.raises(TooSmall) as caught:
        process(photo(width=width, height=height), RULES, NO_META)

    assert caught.value.reason == "too_small"
    assert caught.value.permanent
    assert f"{width}x{height}" in str(caught.value)


def test_minimum_side_is_judged_again_once_the_frame_is_removed(
    photo: Callable[..., bytes],
) -> None:
    framed = photo(width=520, height=520, frames=((30, (255, 255, 255)),))
    with pytest.raises(TooSmall):  # 520 px, but only 454 px of picture inside the frame
        process(framed, RULES, NO_META)
    result = process(photo(width=620, height=620, frames=((30, (255, 255, 255)),)), RULES, NO_META)
    assert result.frame == (34, 34, 34, 34)  # 30 and a margin of 4 px
    assert (result.width, result.height) == (552, 552)


def test_small_image_is_never_upscaled(photo: Callable[..., bytes]) -> None:
    result = process(photo(width=640, height=520), RULES, NO_META)

    assert (result.width, result.height) == (640, 520)
    assert (result.source_width, result.source_height) == (640, 520)


@pytest.mark.parametrize(
    ("size", "expected"),
    [((2048, 1536), (1024, 768)), ((3000, 2000), (1024, 683)), ((1200, 1800), (683, 1024))],
)
def test_longer_side_is_brought_down_to_max_side(
    photo: Callable[..., bytes], size: tuple[int, int], expected: tuple[int, int]
) -> None:
    result = process(photo(width=size[0], height=size[1]), RULES, NO_META)

    assert (result.width, result.height) == expected
    assert (result.source_width, result.source_height) == size
    assert result.source_format == "jpeg"
    assert_rgb_jpeg(result)


def test_max_side_follows_the_rules(photo: Callable[..., bytes]) -> None:
    result = process(photo(width=1000, height=750), SizeRules(max_side=640, min_side=100), NO_META)

    assert (result.width, result.height) == (640, 480)


@pytest.mark.parametrize("orientation", range(2, 9))
def test_rotated_source_comes_out_upright(photo: Callable[..., bytes], orientation: int) -> None:
    upright = decode(process(photo(seed=5), RULES, NO_META).jpeg)

    result = process(photo(seed=5, exif_orientation=orientation), RULES, NO_META)

    out = assert_rgb_jpeg(result)
    assert (result.source_width, result.source_height) == (1000, 750)
    assert out.size == upright.size == (1000, 750)
    assert psnr(out, upright) > 30
    assert 0x0112 not in out.getexif()


def test_quarter_turn_source_has_its_dimensions_swapped_back(
    photo: Callable[..., bytes],
) -> None:
    stored = decode(photo(seed=6, width=2048, height=1536, exif_orientation=6))
    assert stored.size == (1536, 2048)

    result = process(photo(seed=6, width=2048, height=1536, exif_orientation=6), RULES, NO_META)

    assert (result.width, result.height) == (1024, 768)
    assert (result.source_width, result.source_height) == (2048, 1536)


@pytest.mark.parametrize(
    "recipe",
    [
        {"cmyk": True},
        {"fmt": "png"},
        {"fmt": "webp"},
        {"progressive": True},
    ],
)
def test_other_encodings_become_an_rgb_jpeg(
    photo: Callable[..., bytes], recipe: dict[str, object]
) -> None:
    reference = decode(process(photo(seed=8), RULES, NO_META).jpeg)

    result = process(photo(seed=8, **recipe), RULES, NO_META)

    assert psnr(assert_rgb_jpeg(result), reference) > 30


def _with_alpha(im: Image.Image) -> Image.Image:
    rgba = im.convert("RGBA")
    alpha = Image.new("L", im.size, 255)
    alpha.paste(0, (0, 0, im.width // 2, im.height))
    rgba.putalpha(alpha)
    return rgba


def test_transparent_pixels_are_composited_on_white(
    photo_pixels: Callable[..., Image.Image],
) -> None:
    data = encode(_with_alpha(photo_pixels(seed=9)), "PNG")

    out = assert_rgb_jpeg(process(data, RULES, NO_META))

    left = np.asarray(out)[:, : out.width // 2 - 8]
    assert left.min() >= 245


@pytest.mark.parametrize("mode", ["L", "P", "P+transparency", "LA", "1"])
def test_grey_palette_and_bilevel_pngs_become_rgb(
    photo_pixels: Callable[..., Image.Image], mode: str
) -> None:
    im = photo_pixels(seed=10)
    if mode == "P+transparency":
        data = encode(im.convert("P"), "PNG", transparency=0)
    elif mode == "LA":
        data = encode(_with_alpha(im).convert("LA"), "PNG")
    else:
        data = encode(im.convert(mode), "PNG")

    result = process(data, RULES, NO_META)

    assert result.source_format == "png"
    assert_rgb_jpeg(result)


def test_sixteen_bit_grey_png_keeps_its_tones() -> None:
    ramp = np.tile(np.linspace(0, 65535, 800).astype(np.uint16), (600, 1))
    data = encode(Image.fromarray(ramp), "PNG")

    out = np.asarray(assert_rgb_jpeg(process(data, RULES, NO_META)).convert("L"), dtype=int)

    assert out[:, :20].mean() < 10
    assert out[:, -20:].mean() > 245


def test_grey_jpeg_becomes_rgb(photo_pixels: Callable[..., Image.Image]) -> None:
    data = encode(photo_pixels(seed=12).convert("L"))

    assert_rgb_jpeg(process(data, RULES, NO_META))


def test_output_matches_a_careful_lanczos_resize(photo: Callable[..., bytes]) -> None:
    for size in ((2048, 1536), (3000, 2000), (1600, 1200)):
        data = photo(seed=13, width=size[0], height=size[1])
        result = process(data, RULES, NO_META)
        reference = decode(data).resize((result.width, result.height), Image.Resampling.LANCZOS)
        assert psnr(decode(result.jpeg), reference) > 35, size


def test_quality_rule_sets_the_encoder_quality(photo: Callable[..., bytes]) -> None:
    # A source that needs resizing: one that needs nothing is kept as it is, at its quality.
    high = process(photo(seed=14, width=2048, height=1536), SizeRules(quality=95), NO_META)
    low = process(photo(seed=14, width=2048, height=1536), SizeRules(quality=60), NO_META)

    assert len(low.jpeg) < len(high.jpeg) * 0.7


def test_sha256_is_the_digest_of_the_jpeg(photo: Callable[..., bytes]) -> None:
    result = process(photo(seed=15), RULES, NO_META)

    assert result.sha256 == hashlib.sha256(result.jpeg).hexdigest()


def test_same_bytes_give_the_same_jpeg(photo: Callable[..., bytes]) -> None:
    meta = Metadata(lat=1.5, lon=2.5, artist="x")

    assert process(photo(seed=16), RULES, meta) == process(photo(seed=16), RULES, meta)


def test_results_and_errors_cross_a_process_pool(photo: Callable[..., bytes]) -> None:
    with ProcessPoolExecutor(max_workers=1) as pool:
        ok = pool.submit(process, photo(seed=17), RULES, Metadata(lat=1.0, lon=2.0)).result()
        skipped = pool.submit(process, photo(width=400, height=300), RULES, NO_META)
        with pytest.raises(TooSmall) as caught:
            skipped.result()

    assert (ok.width, ok.height) == (1000, 750)
    assert caught.value.reason == "too_small"
    assert caught.value.permanent


def test_imaging_errors_keep_reason_and_permanence_when_pickled() -> None:
    error = ImagingError("decoder ran out of memory", reason="out_of_memory", permanent=False)

    copy = pickle.loads(pickle.dumps(error))

    assert type(copy) is ImagingError
    assert (str(copy), copy.reason, copy.permanent) == (str(error), "out_of_memory", False)


def test_rules_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        SizeRules(quality=0)
    with pytest.raises(ValueError):
        SizeRules(max_side=0)
