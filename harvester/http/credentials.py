"""One key, checked once: the first call with a key goes alone, a refused key is never used again.

A campaign with fifty queries must not send fifty calls with a key the API has already
refused (each is a failed task, and to Flickr an abusive client). Until some call with
the key has succeeded, calls go one at a time; after the first refusal every caller gets
the same `InvalidCredentials` without a request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from harvester.http.errors import InvalidCredentials


class CredentialGate:
    """Unverified (calls one at a time), accepted (calls flow) or refused (no calls)."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._accepted = False
        self._refused: InvalidCredentials | None = None

    @property
    def refused(self) -> InvalidCredentials | None:
        return self._refused

    @asynccontextmanager
    async def use(self) -> AsyncIterator[None]:
        """Around one call made with the key."""
        if self._accepted:
            yield
            return
        async with self._lock:
            if self._refused is not None:
                raise _copy(self._refused)
            try:
                yield
            except InvalidCredentials as exc:
                self._refused = exc
                raise
            # Any other error says nothing about the key; only a success vouches for it.
            self._accepted = True


def _copy(exc: InvalidCredentials) -> InvalidCredentials:
    return InvalidCredentials(
        f"{exc} (refused before; not sent again)", url=exc.url, status=exc.status
    )
