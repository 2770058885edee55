"""OpenCV, loaded where pixels are made (the workers), not in every process that imports
imaging (~36 MB each); one worker process is one core, so no threads of its own."""

from __future__ import annotations

from functools import cache
from types import ModuleType

__all__ = ["opencv"]


@cache
def opencv() -> ModuleType:
    import cv2

    cv2.setNumThreads(1)
    return cv2
