"""Imaging: bytes in, a stored JPEG and its facts out; imports nothing else of harvester."""

from __future__ import annotations

from harvester.imaging.errors import (
    CorruptImage,
    DecompressionBomb,
    ImagingError,
    TooSmall,
    UnsupportedFormat,
)
from harvester.imaging.frame import detect_frame
from harvester.imaging.model import Metadata, Processed, SizeRules
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
