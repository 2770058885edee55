"""Content-Encoding, decoded here rather than by aiohttp, so that a cut stream is refused.

aiohttp decodes gzip as it arrives and hands on whatever it could decode: a gzip stream
cut short under a Content-Length true to the bytes sent (a broken proxy's or edge's) ends
without error, and half a JSON answer or picture passes as whole (a cut deflate stream
it reports as the server's bad response, final). Only the stream's own end says it is
whole: zlib's ``eof`` (the deflate end block and, for gzip, its CRC and length trailer
checked) with nothing after it but further gzip members. We offer what we decode and no
more: installing Brotli must not make aiohttp ask for ``br`` bodies we would not read.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from harvester.http.errors import BadResponseError, TooLargeError, TruncatedBodyError

OFFERED = "gzip, deflate"
# RFC 9110 8.4.1.3: a recipient treats x-gzip as gzip.
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
_RAW_DEFLATE = -zlib.MAX_WBITS
# Compressions we do not decode: the IANA content-coding registry's, and the unregistered
# ones servers send. Any other word in the header (none, binary, UTF-8, 8bit) compresses
# nothing: the body is as sent, as curl and browsers take it (and aiohttp took it).
_NOT_DECODED = frozenset(
    {"br", "zstd", "compress", "x-compress", "pack200-gzip", "exi", "aes128gcm", "dcb", "dcz"}
    | {"bzip2", "x-bzip2", "xz", "x-xz", "lzma"}
)
_GZIP_MEMBER = b"\x1f\x8b"
# aiohttp's bound, which these bodies had before: a stream of empty members costs a
# decoder each, so a body of millions of them would hold the event loop for seconds.
_MAX_MEMBERS = 1024
_WINDOW = 64  # a later member is fed in doubling windows: see _inflate


def applied(values: Iterable[str]) -> tuple[str, ...]:
    """The compressions Content-Encoding header lines name, in the order they were
    applied (RFC 9110 8.4): () for a body as sent, whatever else the header says."""
    codings: list[str] = []
    for value in values:
        for coding in value.lower().split(","):
            coding = coding.strip(" \t")
            if coding in _WBITS or coding in _NOT_DECODED:
                codings.append(coding)
    return tuple(codings)


def decode(data: bytes, codings: tuple[str, ...], max_bytes: int, shown: str, status: int) -> bytes:
    """``data`` decoded from ``codings`` (see `applied`), last applied first, each at most
    ``max_bytes``: a bomb stops there, never decoded whole."""
    refused = [coding for coding in codings if coding not in _WBITS]
    if refused:
        raise BadResponseError(
            f"body in {', '.join(refused)}, not an encoding we offered, from {shown}",
            url=shown,
            status=status,
        )
    for coding in reversed(codings):
        data = _inflate(data, coding, max_bytes, shown, status)
    return data


def _inflate(data: bytes, coding: str, max_bytes: int, shown: str, status: int) -> bytes:
    """``data`` decoded from one coding. An empty body has no stream to check (a 204's,
    say) and stays empty. The first member is fed whole; gzip members after it (RFC 1952
    2.2) in windows doubling from `_WINDOW`, as zlib copies all input past a member's end
    into ``unused_data``: fed the rest at every member, many small members cost the square
    of the body's size."""
    if not data:
        return data
    wbits = _WBITS[coding]
    if coding == "deflate" and data[0] & 0x0F != 8:
        wbits = _RAW_DEFLATE  # no zlib header: the raw deflate many servers send as deflate
    body = _Body(coding, len(data), shown, status)
    view = memoryview(data)
    parts: list[bytes] = []
    room = max_bytes + 1  # one byte past the cap tells a bomb from a body exactly at it
    start, window, members = 0, len(data), 1
    stream = zlib.decompressobj(wbits)
    while start < len(data):
        fed = view[start : start + window]
        try:
            part = stream.decompress(fed, room)
        except zlib.error as exc:
            if start == 0 and not _decodes_at_all(data, wbits):
                raise body.undecodable(f"does not decode: {exc}") from None
            raise body.broken(f"breaks off: {exc}") from None
        parts.append(part)
        room -= len(part)
        if room <= 0:
            raise TooLargeError(
                f"{coding} body decoded past the cap of {max_bytes} bytes from {shown}",
                url=shown,
                status=status,
            )
        start += len(fed) - len(stream.unused_data)  # below the cap zlib took all it was fed
        window *= 2
        if stream.eof and start < len(data):
            members += 1
            body.check_member(view[start:], members)
            stream, window = zlib.decompressobj(wbits), _WINDOW
    if not stream.eof:
        raise body.broken("ends before its stream does")
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _decodes_at_all(data: bytes, wbits: int) -> bool:
    """Whether any of ``data`` decodes before the error it gave: asked for one byte, zlib
    stops there, short of an error further on (a CRC trailer's, a block's)."""
    try:
        return bool(zlib.decompressobj(wbits).decompress(data, 1))
    except zlib.error:
        return False


@dataclass(frozen=True)
class _Body:
    """An encoded body, as its errors name it."""

    coding: str
    size: int
    shown: str
    status: int

    def check_member(self, rest: memoryview, members: int) -> None:
        """The bytes after a stream's end must start gzip member number ``members``."""
        if self.coding == "deflate" or rest[: len(_GZIP_MEMBER)] != _GZIP_MEMBER:
            raise self.broken(f"has {len(rest)} bytes after its stream's end")
        if members > _MAX_MEMBERS:
            raise self.undecodable(f"has more than {_MAX_MEMBERS} gzip members")

    def broken(self, what: str) -> TruncatedBodyError:
        """A stream that starts right but is not whole (cut, spoiled partway, followed by
        bytes that are no member): transient, as a body shorter than its Content-Length is
        (the next try may come through an edge that does not cut it)."""
        return TruncatedBodyError(self._say(what), url=self.shown, status=self.status)

    def undecodable(self, what: str) -> BadResponseError:
        """A body we will not decode as it came: no stream in its coding from its first
        byte (a JPEG labelled gzip, say: mislabelled by its server) or past the members'
        bound. The same on every try, so final."""
        return BadResponseError(self._say(what), url=self.shown, status=self.status)

    def _say(self, what: str) -> str:
        return f"{self.coding} body of {self.size} bytes {what}, from {self.shown}"
