"""A refused key is sent once: later callers get the refusal without a request."""

from __future__ import annotations

import asyncio

import pytest

from harvester.http import CredentialGate, InvalidCredentials, ServiceUnavailableError


async def test_callers_queue_behind_the_first_call_and_never_send_a_refused_key() -> None:
    gate = CredentialGate()
    sent = 0

    async def call() -> None:
        nonlocal sent
        async with gate.use():
            sent += 1
            await asyncio.sleep(0)
            raise InvalidCredentials("Flickr error 100", url="u")

    results = await asyncio.gather(*(call() for _ in range(5)), return_exceptions=True)
    assert sent == 1 and all(isinstance(r, InvalidCredentials) for r in results)
    assert gate.refused is not None


async def test_other_errors_say_nothing_about_the_key_and_a_success_opens_the_gate() -> None:
    gate = CredentialGate()
    with pytest.raises(ServiceUnavailableError):
        async with gate.use():
            raise ServiceUnavailableError("HTTP 503", url="u")
    assert gate.refused is None
    async with gate.use():
        pass
    inside = 0

    async def call() -> None:
        nonlocal inside
        async with gate.use():
            inside += 1
            await asyncio.sleep(0.01)

    await asyncio.gather(call(), call())
    assert inside == 2  # accepted: calls no longer go one at a time
