"""Content-Encoding, decoded here rather than by aiohttp, so that a cut stream is refused.

aiohttp decodes gzip as it arrives and hands on whatever it could decode: a gzip stream
cut short under a Content-Length true to the bytes sent (a broken proxy's or edge's) ends
without error, and half a JSON answer or picture passes as whole (a cut deflate stream
it reports as the server's bad response, final). Only the stream's own end says it is
whole: zlib's ``eof`` (the deflate end block and, for gzip, its CRC and length trailer
checked) with nothing after it. We offer what we decode and no more: installing Brotli
must not make aiohttp ask for ``br`` bodies we would not read.
"""

from __future__ import annotations

import zlib

from harvester.http.errors import BadResponseError, TooLargeError, TruncatedBodyError

OFFERED = "gzip, deflate"
IDENTITY = ("", "identity")
# RFC 9110 8.4.1.3: a recipient treats x-gzip as gzip.
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
_RAW_DEFLATE = -zlib.MAX_WBITS


def decode(data: bytes, coding: str, max_bytes: int, shown: str, status: int) -> bytes:
    """``data`` decoded from ``coding`` (a Content-Encoding, lower-cased), at most
    ``max_bytes`` of it: a bomb stops there, never decoded whole. An empty body has no
    stream to check (a 204's, say) and stays empty."""
    wbits = _WBITS.get(coding)
    if wbits is None:
        raise BadResponseError(
            f"body in {coding!r}, an encoding we did not offer, from {shown}",
            url=shown,
            status=status,
        )
    if not data:
        return data
    if coding == "deflate" and data[0] & 0x0F != 8:
        wbits = _RAW_DEFLATE  # no zlib header: the raw deflate many servers send as deflate
    stream = zlib.decompressobj(wbits)
    try:
        # One byte past the cap tells a bomb from a body exactly at it.
        decoded = stream.decompress(data, max_bytes + 1)
    except zlib.error as exc:
        raise _broken(coding, f"does not decode: {exc}", len(data), shown, status) from None
    if len(decoded) > max_bytes:
        raise TooLargeError(
            f"{coding} body decoded past the cap of {max_bytes} bytes from {shown}",
            url=shown,
            status=status,
        )
    # Below the cap zlib took all the input: short of the stream's end, the body was cut.
    if not stream.eof:
        raise _broken(coding, "ends before its stream does", len(data), shown, status)
    if stream.unused_data:
        trailing = f"has {len(stream.unused_data)} bytes after its stream's end"
        raise _broken(coding, trailing, len(data), shown, status)
    return decoded


def _broken(coding: str, what: str, size: int, shown: str, status: int) -> TruncatedBodyError:
    """A stream that is not whole: transient, as a body shorter than its Content-Length is
    (the next try may come through an edge that does not cut it)."""
    return TruncatedBodyError(
        f"{coding} body of {size} bytes {what}, from {shown}", url=shown, status=status
    )
