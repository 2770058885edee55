"""Calls made together (the entities standing in for a refused `?ids=`) end as one call made
alone would: with one error, the gravest of several, and cancelled when cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from harvester.http import HttpError, InvalidCredentials, RateLimitedError
from harvester.sources.mapillary_entities import together

URL = "https://graph.mapillary.com/42"


async def _raises(error: Exception) -> None:
    raise error


async def _caught(calls: list[Coroutine[Any, Any, None]]) -> tuple[HttpError, int]:
    """What `together` raised, and how far its caller was left being cancelled."""
    current = asyncio.current_task()
    assert current is not None
    try:
        await together(calls)
    except HttpError as exc:
        return exc, current.cancelling()
    raise AssertionError("together raised nothing")


async def test_of_several_errors_the_refused_token_is_raised_and_nothing_is_left_cancelling():
    """A refused token pauses its key's campaigns; a 429 only retries the task (to meet the
    same refusal). Raised, the group leaves its caller as a lone call would: not cancelling,
    so a cancel of the caller's own can still be told apart."""
    limited = RateLimitedError("slow down", url=URL, retry_after=600)
    refused = InvalidCredentials("token refused", url=URL)
    error, cancelling = await asyncio.create_task(_caught([_raises(limited), _raises(refused)]))
    assert error is refused and cancelling == 0


async def test_a_cancel_met_while_the_calls_wind_down_from_a_failure_ends_the_caller_cancelled():
    """One call fails; the others, cancelled, take their time to end (a connection to close);
    the caller cancelled meanwhile ends cancelled, not failed with the first call's error."""
    stopping, wound_down = asyncio.Event(), asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            stopping.set()
            await wound_down.wait()
            raise

    limited = RateLimitedError("slow down", url=URL, retry_after=600)
    caller = asyncio.create_task(together([_raises(limited), slow_to_stop()]))
    await stopping.wait()  # failed, and waiting for the other call to end
    caller.cancel()
    wound_down.set()
    await asyncio.wait([caller])
    assert caller.cancelled()
