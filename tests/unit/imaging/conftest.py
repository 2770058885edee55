"""Fixtures for the imaging tests (helpers live in imaging_helpers)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from imaging_helpers import decode, rendered
from PIL import Image

from harvester.emulator.images import ImageRecipe


@pytest.fixture
def photo() -> Callable[..., bytes]:
    """Encoded photo-like bytes for a recipe given as keyword arguments."""

    def make(**fields: object) -> bytes:
        fields.setdefault("seed", 11)
        fields.setdefault("width", 1000)
        fields.setdefault("height", 750)
        return rendered(ImageRecipe(**fields))  # type: ignore[arg-type]

    return make


@pytest.fixture
def photo_pixels(photo: Callable[..., bytes]) -> Callable[..., Image.Image]:
    """A decoded RGB photo to paint on before re-encoding."""

    def make(**fields: object) -> Image.Image:
        return decode(photo(**fields)).convert("RGB")

    return make
