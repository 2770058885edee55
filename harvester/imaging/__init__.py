"""Imaging: bytes in, a stored JPEG and its facts out; imports nothing else of harvester.

The errors and the plain values (`SizeRules`, `Metadata`, `Processed`) are light and loaded
here. The functions that touch pixels load numpy and Pillow (~0.15 s of CPU) on first use:
the daemon's process names rules and metadata but never makes pixels (its workers do, and
the fork server they start from imports `harvester.imaging.pipeline` for them).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from harvester.imaging.errors import (
    CorruptImage,
    DecompressionBomb,
    ImagingError,
    TooSmall,
    UnsupportedFormat,
)
from harvester.imaging.model import Metadata, Processed, SizeRules

if TYPE_CHECKING:
    from harvester.imaging.frame import detect_frame
    from harvester.imaging.pipeline import fit, probe, process

__all__ = [
    "CorruptImage",
    "DecompressionBomb",
    "ImagingError",
    "Metadata",
    "Processed",
    "SizeRules",
    "TooSmall",
    "UnsupportedFormat",
    "detect_frame",
    "fit",
    "probe",
    "process",
]

# name -> the module that defines it, imported when the name is first asked for
_PIXELS = {
    "detect_frame": "harvester.imaging.frame",
    "fit": "harvester.imaging.pipeline",
    "probe": "harvester.imaging.pipeline",
    "process": "harvester.imaging.pipeline",
}


def __getattr__(name: str) -> object:
    """`from harvester.imaging import process` loads the pixel code then, not before."""
    if name not in _PIXELS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_PIXELS[name]), name)
    globals()[name] = value  # asked once: later look-ups find it without this function
    return value
