"""Why an image could not be turned into a stored JPEG.

Imaging is pure and imports nothing from the rest of harvester, so it has its
own root; the worker maps it onto the job's outcome. Every error carries a
short machine `reason` (stored as the image row's skip/error reason) and
whether retrying the same bytes could ever help (`permanent`).
"""

from __future__ import annotations

__all__ = [
    "CorruptImage",
    "DecompressionBomb",
    "ImagingError",
    "TooSmall",
    "UnsupportedFormat",
]


class ImagingError(Exception):
    """The image could not be processed."""

    reason: str = "imaging_error"
    permanent: bool = True

    def __init__(
        self,
        message: str | None = None,
        *,
        reason: str | None = None,
        permanent: bool | None = None,
    ) -> None:
        super().__init__(message or (self.__doc__ or "").strip())
        if reason is not None:
            self.reason = reason
        if permanent is not None:
            self.permanent = permanent

    def __reduce__(self) -> tuple[object, ...]:
        # Raised inside process-pool workers: keep reason/permanent across pickling,
        # which by default would rebuild the exception from its message alone.
        return (_rebuild, (type(self), str(self), self.reason, self.permanent))


def _rebuild(cls: type[ImagingError], message: str, reason: str, permanent: bool) -> ImagingError:
    return cls(message, reason=reason, permanent=permanent)


class UnsupportedFormat(ImagingError):
    """The body is not a JPEG, PNG or WebP image."""

    reason = "not_an_image"


class CorruptImage(ImagingError):
    """The image data is damaged and cannot be decoded."""

    reason = "corrupt"


class DecompressionBomb(ImagingError):
    """The image declares more pixels than the configured limit."""

    reason = "bomb"


class TooSmall(ImagingError):
    """The image's shorter side is below the minimum; it is skipped, not failed."""

    reason = "too_small"
