"""Bodies sent with a Content-Encoding: whole only if the encoded stream is whole.

A gzip stream cut short under a Content-Length true to the bytes sent is nothing amiss at
the HTTP level; only its end-of-stream and CRC trailer tell. aiohttp's own decoding hands
on what it could decode, so a cut JSON answer or picture would pass as whole.
"""

from __future__ import annotations

import json
import random
from urllib.parse import urlencode

import pytest
from clocks import FakeClock
from http_upstream import JPEG, Upstream, make_settings
from structlog.testing import capture_logs

from harvester.emulator import EmulatorConfig, Faults, start_emulator
from harvester.emulator.config import FLICKR_KEY
from harvester.http import HttpClient, PermanentHttpError, TooLargeError, TruncatedBodyError


@pytest.mark.parametrize("encoding", ["gzip", "x-gzip", "deflate", "raw-deflate"])
async def test_a_whole_encoded_answer_is_decoded_and_only_what_we_decode_is_offered(
    upstream: Upstream, client: HttpClient, encoding: str
) -> None:
    data = await client.get_json(f"{upstream.base}/encoded/a", params={"encoding": encoding})
    assert data == {"path": "/encoded/a", "offered": "gzip, deflate"}
    fetched = await client.fetch(f"{upstream.base}/encoded/a?encoding={encoding}")  # paced
    assert json.loads(fetched.data) == data
    assert upstream.seen["/encoded/a"] == 2


@pytest.mark.parametrize("spoil", ["no_trailer", "half"])
async def test_a_gzip_answer_cut_short_at_its_declared_length_is_retried_as_truncated(
    upstream: Upstream, client: HttpClient, spoil: str
) -> None:
    """Without its trailer the JSON decodes whole and parses; cut in half it does not parse:
    either way the stream never ended, so it is a short body, not an answer."""
    url = f"{upstream.base}/encoded/{spoil}"
    data = await client.get_json(url, params={"spoil": spoil, "fail": "1"})
    assert data["path"] == f"/encoded/{spoil}"
    assert upstream.seen[f"/encoded/{spoil}"] == 2
    with pytest.raises(TruncatedBodyError, match="ends before its stream does"):
        await client.get_json(f"{url}-always", params={"spoil": spoil})
    assert upstream.seen[f"/encoded/{spoil}-always"] == 5


@pytest.mark.parametrize("spoil", ["crc", "size", "trailing"])
async def test_a_gzip_answer_with_a_wrong_trailer_or_bytes_past_its_end_is_refused(
    upstream: Upstream, client: HttpClient, spoil: str
) -> None:
    with pytest.raises(TruncatedBodyError) as caught:
        await client.get_json(f"{upstream.base}/encoded/{spoil}", params={"spoil": spoil})
    assert caught.value.reason == "truncated"
    assert upstream.seen[f"/encoded/{spoil}"] == 5  # retried, as any short body is


async def test_a_deflate_stream_cut_short_is_truncated(
    upstream: Upstream, client: HttpClient
) -> None:
    with pytest.raises(TruncatedBodyError):
        await client.fetch(f"{upstream.base}/encoded/d?encoding=raw-deflate&spoil=half")


def _encoded(upstream: Upstream, key: str, **query: str) -> str:
    """The URL of the upstream's /encoded/``key`` answer, shaped by ``query``."""
    return f"{upstream.base}/encoded/{key}?{urlencode(query)}"


@pytest.mark.parametrize("label", ["none", "binary", "UTF-8", "8bit", "", "identity, none"])
async def test_a_jpeg_whose_content_encoding_names_no_compression_is_taken_as_sent(
    upstream: Upstream, client: HttpClient, label: str
) -> None:
    """Servers write all sorts into Content-Encoding on plain pictures; curl and browsers
    take them as they came, and so did aiohttp's decoding."""
    url = _encoded(upstream, "plain", encoding="identity", jpeg="1", label=label)
    body = await client.fetch(url)
    assert (body.data, body.end_checked) == (JPEG, True)


@pytest.mark.parametrize(
    ("encoding", "label"),
    [("gzip", "identity, gzip"), ("gzip", "GZIP, none"), ("deflate,gzip", "deflate, gzip"),
     ("gzip,gzip", "gzip,gzip"), ("raw-deflate,x-gzip", "deflate , x-gzip")],
)  # fmt: skip
async def test_a_list_of_codings_is_decoded_last_applied_first(
    upstream: Upstream, client: HttpClient, encoding: str, label: str
) -> None:
    body = await client.fetch(
        _encoded(upstream, "listed", encoding=encoding, jpeg="1", label=label)
    )
    assert body.data == JPEG


async def test_gzip_members_one_after_another_are_decoded_whole(
    upstream: Upstream, client: HttpClient
) -> None:
    """RFC 1952 2.2: a gzip file is a series of members, and its body all of them."""
    url = f"{upstream.base}/encoded/members"
    data = await client.get_json(url, params={"encoding": "gzip-members"})
    assert data == {"path": "/encoded/members", "offered": "gzip, deflate"}
    body = await client.fetch(_encoded(upstream, "members", encoding="gzip-members", jpeg="1",
                                       members="9"))  # fmt: skip
    assert body.data == JPEG
    assert upstream.seen["/encoded/members"] == 2


async def test_the_cap_on_a_decoded_size_holds_across_gzip_members(
    upstream: Upstream, client: HttpClient
) -> None:
    """Each member is under the cap, the body they make is over it: a bomb all the same."""
    cap = 1024 * 1024
    at_cap = _encoded(upstream, "at-cap", encoding="gzip-members", zeros=str(cap))
    assert (await client.fetch(at_cap, max_bytes=cap)).data == bytes(cap)
    with pytest.raises(TooLargeError):
        over = _encoded(upstream, "over", encoding="gzip-members", zeros=str(cap + 2))
        await client.fetch(over, max_bytes=cap)
    assert upstream.seen["/encoded/over"] == 1  # too large is permanent: no retry


async def test_a_stream_of_more_gzip_members_than_anyone_sends_is_refused(
    upstream: Upstream, client: HttpClient
) -> None:
    """Each member costs a decoder: a body of empty ones would hold the loop for seconds."""
    many = _encoded(upstream, "many", encoding="gzip-members", zeros="0", members="1024")
    assert (await client.fetch(many)).data == b""
    too_many = _encoded(upstream, "too-many", encoding="gzip-members", zeros="0", members="1025")
    with pytest.raises(PermanentHttpError, match="more than 1024 gzip members") as caught:
        await client.fetch(too_many)
    assert caught.value.reason == "bad_response"


_UNOFFERED = "not an encoding we offered"


@pytest.mark.parametrize(
    ("label", "says"),
    [("br", _UNOFFERED), ("zstd", _UNOFFERED), ("x-bzip2", _UNOFFERED), ("gzip, br", _UNOFFERED),
     ("BR", _UNOFFERED), ("gzip", "does not decode"), ("x-gzip", "does not decode"),
     ("deflate", "does not decode")],
)  # fmt: skip
async def test_a_jpeg_labelled_in_a_compression_we_do_not_read_is_a_bad_response_not_retried(
    upstream: Upstream, client: HttpClient, label: str, says: str
) -> None:
    """One we did not offer we cannot read; one we did, of which nothing decodes, is its
    server's mislabelling: either way the next try gets the same."""
    url = _encoded(upstream, "refused", encoding="identity", jpeg="1", label=label)
    with pytest.raises(PermanentHttpError, match=says) as caught:
        await client.fetch(url)
    assert caught.value.reason == "bad_response"
    assert upstream.seen["/encoded/refused"] == 1


async def test_a_gzip_bomb_is_refused_at_the_cap_on_its_decoded_size(
    upstream: Upstream, client: HttpClient
) -> None:
    cap = 1024 * 1024
    body = await client.fetch(f"{upstream.base}/encoded/at-cap?zeros={cap}", max_bytes=cap)
    assert body.data == bytes(cap)
    with pytest.raises(TooLargeError):
        await client.fetch(f"{upstream.base}/encoded/bomb?zeros={16 * cap}", max_bytes=cap)
    assert upstream.seen["/encoded/bomb"] == 1  # too large is permanent: no retry


_SEARCH = {"method": "flickr.photos.search", "api_key": FLICKR_KEY, "text": "bridge",
           "format": "json", "nojsoncallback": "1"}  # fmt: skip


@pytest.mark.parametrize("scope", ["api", "cdn"])
async def test_cut_or_crc_spoiled_gzip_from_the_emulator_is_truncated_on_every_try(
    scope: str,
) -> None:
    """The emulator's broken gzip (cut anywhere, or a wrong CRC; Content-Length true): a
    Flickr search's JSON and a picture alike are short bodies on every try, never an
    answer, a bad response or a picture handed on."""
    faults = Faults(bad_gzip_rate=1.0, scope=frozenset({scope}))
    emulator = await start_emulator(EmulatorConfig(faults=faults))
    attempts = 6
    try:
        async with HttpClient(
            make_settings(max_attempts=attempts), clock=FakeClock(), rng=random.Random(7)
        ) as http:
            with capture_logs() as logs, pytest.raises(TruncatedBodyError):
                if scope == "api":
                    await http.get_json(emulator.flickr_api_url, params=_SEARCH)
                else:
                    world = emulator.world
                    url = world.url_list(1, base_url=emulator.base_url, hostile=False)[0]["url"]
                    await http.fetch(url)
        stats = emulator.state.stats.snapshot()
    finally:
        await emulator.close()
    assert stats["bad_gzip"] == attempts
    retried = [entry["error"] for entry in logs if entry["event"] == "http_retry"]
    assert retried == ["TruncatedBodyError"] * (attempts - 1)
