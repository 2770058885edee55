"""Mapillary's entities standing in for a refused `?ids=`: one batch's, asked for together.

Where the multi-get is not served, each image's record comes from its own entity. A batch's
entities are asked for at once (the entity limiter still paces each), so a batch costs about
the round trip its `?ids=` request would have, not one per image; a batch is the caller's to
keep to the multi-get's size, as the limiter is shared first come first served. Together they
fail as one call would: with one error, not an ExceptionGroup, and the gravest of several (a
refused token, which pauses its key's campaigns); or cancelled, when the task is cancelled
while they wind down, so a stopping daemon hands the task back instead of failing it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

from harvester.http import InvalidCredentials, PermanentHttpError

T = TypeVar("T")


async def entities(
    ids: Sequence[str], record: Callable[[str], Coroutine[Any, Any, Mapping[str, Any] | None]]
) -> dict[str, Mapping[str, Any]]:
    """Each id's record, asked for together; an id whose record is None (gone) is absent."""
    found = await together([record(image_id) for image_id in ids])
    return {i: r for i, r in zip(ids, found, strict=True) if r is not None}


async def together(calls: Sequence[Coroutine[Any, Any, T]]) -> list[T]:
    """The calls' results in order, run concurrently. The first error cancels the rest and
    one is raised as itself (as a call made alone would raise it), not in an ExceptionGroup;
    a cancellation of the caller meanwhile is raised instead, as the group would drop it."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(call) for call in calls]
            # Waited for here, not in the group's exit: Python 3.11's group takes back the
            # cancel it sends this task on a failure only if it came before its exit began,
            # else the task stays cancelling() and no cancel of its own could be told apart.
            if tasks:
                await asyncio.wait(tasks)
    except BaseExceptionGroup as failed:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise asyncio.CancelledError from failed
        error = max(failed.exceptions, key=_gravity)
        raise error from error.__cause__
    return [task.result() for task in tasks]


def _gravity(error: BaseException) -> int:
    """How surely an error ends the task: a refused token (every call made with it fails),
    then any other permanent error, then one worth another try."""
    if isinstance(error, InvalidCredentials):
        return 2
    return 1 if isinstance(error, PermanentHttpError) else 0
