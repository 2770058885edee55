"""Whether a body's end was checked: a Content-Length, chunked framing or an encoded
stream's end catches a body cut on the way (a truncated body, retried); a body with none
of them ends as its connection closes, cut or not, and says so."""

from __future__ import annotations

import gzip

import pytest
from local_server import answering

from harvester.http import HttpClient, TruncatedBodyError

BODY = bytes(range(256)) * 64


def _answer(framing: str, *, cut: bool) -> bytes:
    """BODY sent in ``framing``; ``cut``: the connection closes halfway through it."""
    payload = gzip.compress(BODY, mtime=0) if framing == "gzip" else BODY
    head = "HTTP/1.0 200 OK\r\n" if framing == "http/1.0" else "HTTP/1.1 200 OK\r\n"
    head += "Connection: close\r\n"
    if framing == "length":
        head += f"Content-Length: {len(payload)}\r\n"
    elif framing == "gzip":
        head += "Content-Encoding: gzip\r\n"  # and no length: only the stream's end
    elif framing == "none":
        head += "Content-Encoding: none\r\n"  # no compression: nothing to end the body
    elif framing == "chunked":
        head += "Transfer-Encoding: chunked\r\n"
        half = len(payload) // 2
        first, second = payload[:half], payload[half:]
        payload = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(first), first, len(second), second)
    wire = f"{head}\r\n".encode() + payload
    return wire[: len(wire) - len(payload) // 2] if cut else wire


@pytest.mark.parametrize("framing", ["length", "chunked", "gzip"])
async def test_a_body_whose_server_said_where_it_ends_is_checked_and_a_cut_is_truncated(
    client: HttpClient, framing: str
) -> None:
    async with answering(lambda _path: _answer(framing, cut=False)) as base:
        body = await client.fetch(f"{base}/whole.jpg")
    assert (body.data, body.end_checked) == (BODY, True)
    async with answering(lambda _path: _answer(framing, cut=True)) as base:
        with pytest.raises(TruncatedBodyError) as caught:
            await client.fetch(f"{base}/cut.jpg")
    assert caught.value.reason == "truncated"


@pytest.mark.parametrize("framing", ["http/1.0", "close", "none"])
async def test_a_body_ended_only_by_its_connection_closing_says_its_end_was_not_checked(
    client: HttpClient, framing: str
) -> None:
    async with answering(lambda _path: _answer(framing, cut=False)) as base:
        whole = await client.fetch(f"{base}/whole.jpg")
    async with answering(lambda _path: _answer(framing, cut=True)) as base:
        cut = await client.fetch(f"{base}/cut.jpg")
    assert (whole.data, whole.end_checked) == (BODY, False)
    assert (cut.data, cut.end_checked) == (BODY[: len(BODY) // 2], False)
