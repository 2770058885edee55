"""Errors the APIs put in the body, classified here like statuses are in classify.

Flickr answers HTTP 200 with `stat: fail` and a code. Graph-style APIs (Mapillary's
among them) send `{"error": {"code": ...}}` with a 4xx or 5xx status whose number says
little: a rate limit comes as a 400 or 403, so the body's code decides, not the status.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from harvester.http.errors import (
    BboxTooLargeError,
    FieldRetiredError,
    HttpError,
    InvalidCredentials,
    NotFoundError,
    PermanentHttpError,
    RateLimitedError,
    ServiceUnavailableError,
    TooMuchDataError,
    TransientHttpError,
)
from harvester.redact import redact_text

# (status, body, redacted url) -> the error the body means, or None to classify by status.
BodyErrors = Callable[[int, bytes, str], HttpError | None]

# Flickr: 105 service unavailable and 10 "the Flickr search API is not currently available"
# (documented), and 201 (with an HTTP 400) or 0, "Sorry, the Flickr API service is not
# currently available.", as met in the wild: outages the breaker waits out, not failures
# of a task; 106 write failed.
FLICKR_DOWN = frozenset({0, 10, 105, 201})
FLICKR_TRANSIENT = frozenset({106})
FLICKR_KEY_CODES = frozenset({98, 99, 100})
# flickr.photos.search refusing the query itself: too many tags in an ALL query (1), unknown
# user (2), parameterless search (3, also an unreadable bbox), no permission for the pool
# (4), user deleted (5), no valid or too many machine tags (11, 12), contacts only (17),
# illogical arguments (18), and "Bad URL found" (116: an argument held a URL Flickr has seen
# abused, and of what a search sends only the operator's text can hold one). Asked again,
# the same query is refused again: the campaign's query is what to change.
FLICKR_QUERY_CODES = frozenset({1, 2, 3, 4, 5, 11, 12, 17, 18, 116})
# The API refusing the request's form: SSL required (95), a bad or missing signature (96,
# 97), an unknown format (111) or method (112), an unreadable SOAP envelope or XML-RPC call
# (114, 115). Not the query's fault: this client's, or an API that changed under it.
FLICKR_REQUEST_CODES = frozenset({95, 96, 97, 111, 112, 114, 115})
FLICKR_UNKNOWN = "flickr_error"  # the reason of a code not listed here
# Graph throttling, as its error-handling and rate-limiting guides list it: application (4),
# user (17), page (32) and custom (613) rate limits, "Application limit reached" (341),
# "Temporarily blocked for policies violations" (368, "wait and retry"), and the business
# use case limits (80000 Ads Insights ... 80014 Catalog Batch). Any error marked
# `"is_transient": true` is worth another try, whatever its code.
GRAPH_RATE_CODES = frozenset({4, 17, 32, 341, 368, 613, *range(80000, 80015)})
GRAPH_TOKEN_CODES = frozenset({102, 190, 463, 467})
GRAPH_DOWN_CODES = frozenset({1, 2})  # "unknown error" / "service temporarily unavailable"
# Code 1 (as an HTTP 500) also says a request asks for too much: Mapillary's bbox search
# answers so for a dense box, whatever its limit or fields. Its text, not its code, tells.
_TOO_MUCH = re.compile("reduce the amount of data", re.IGNORECASE)
# A bbox search over the size limit is a 400 (code 100, "invalid parameter") whose message
# says so ("Bbox is too large, each side must be smaller than 0.01 degrees", or "Bbox area is
# too large"); every other 400 a search gets (a retired field, a missing permission, a bad
# filter value) says nothing of the box's size, so only this wording teaches a tile side.
_BBOX_TOO_LARGE = re.compile(
    r"\b(bbox|bounding box)\b.*\b(too (large|big)|exceeds?|smaller than)\b", re.IGNORECASE
)
# A field Graph no longer serves, named in the request: Mapillary withdrew `creator` so for
# years (openstreetmap/iD#10136). Only this exact wording (Facebook's Graph puts "(#100) "
# before it) names a field, and only a plain field name is read from it.
_NONEXISTING_FIELD = re.compile(
    r"(?:\(#100\) )?Tried accessing nonexisting field \(([a-z][a-z0-9_]{0,63})\)"
    r" on node type \([A-Za-z]{1,64}\)"
)
MAX_ERROR_BODY = 64 * 1024  # an error body bigger than this is a page, not an error object
_MESSAGE_CHARS = 1000


def _code(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def flickr_stat_error(
    body: Mapping[str, Any], *, url: str, secrets: Sequence[str] = ()
) -> HttpError | None:
    """The error a `stat: fail` answer deserves (HTTP 200 notwithstanding); None if ok.
    Each code has a reason of its own, never http_error (which says "a status"): a code
    this module does not know is `flickr_error`, its number in the message."""
    if body.get("stat") == "ok":
        return None
    code = _code(body.get("code"))
    raw = body.get("message")
    message = redact_text(raw if isinstance(raw, str) else "no message", secrets)
    text = f"Flickr error {code}: {message} ({url})"
    if code in FLICKR_DOWN:
        return ServiceUnavailableError(text, url=url)
    if code in FLICKR_TRANSIENT:
        return TransientHttpError(text, url=url)
    if code in FLICKR_KEY_CODES:
        return InvalidCredentials(text, url=url)
    if code in FLICKR_QUERY_CODES:
        return PermanentHttpError(text, url=url, reason="query_refused")
    if code in FLICKR_REQUEST_CODES:
        return PermanentHttpError(text, url=url, reason="request_refused")
    return PermanentHttpError(text, url=url, reason=FLICKR_UNKNOWN)


def flickr_body_errors(secrets: Sequence[str]) -> BodyErrors:
    """A reader for Flickr JSON answers: `stat: fail` on a 200 is an error."""

    def read(status: int, data: bytes, url: str) -> HttpError | None:
        body = _json_object(data)
        if body is None or "stat" not in body:
            return None
        error = flickr_stat_error(body, url=url, secrets=secrets)
        refusal = isinstance(error, PermanentHttpError) and not isinstance(
            error, InvalidCredentials
        )
        if refusal and status >= 500:
            return None  # a refusal sent as "down" says less than the status does
        return error

    return read


def graph_error(error: Mapping[str, Any], *, url: str, status: int | None = None) -> HttpError:
    """A Graph error object as a member of the error tree, by its code first."""
    code = _code(error.get("code"))
    kind = str(error.get("type", "GraphError"))[:60]
    message = f"Graph error {kind} code {code}" + (f" (HTTP {status})" if status else "")
    message += f" from {url}"
    if code in GRAPH_RATE_CODES:
        return RateLimitedError(message, url=url, status=status)
    if code == 1 and _says(error, _TOO_MUCH):
        return TooMuchDataError(message + ": asks for too much data", url=url, status=status)
    if code in GRAPH_TOKEN_CODES:
        return InvalidCredentials(message, url=url, status=status)
    if code in GRAPH_DOWN_CODES or (status is not None and status >= 500):
        return ServiceUnavailableError(message, url=url, status=status)
    if error.get("is_transient") is True:
        return TransientHttpError(message, url=url, status=status, reason="transient")
    if status in (404, 410) or _gone(code, error):
        return NotFoundError(message, url=url, status=status)
    if _says(error, _BBOX_TOO_LARGE):
        too_large = message + ": the box is over the search's size limit"
        return BboxTooLargeError(too_large, url=url, status=status)
    field = _retired_field(error)
    if field is not None:
        retired = message + f": no field {field} on this node any more"
        return FieldRetiredError(retired, url=url, field=field, status=status)
    return PermanentHttpError(message, url=url, status=status)


def _retired_field(error: Mapping[str, Any]) -> str | None:
    """The field a refusal says the node does not have, read from its whole message."""
    text = error.get("message")
    found = _NONEXISTING_FIELD.fullmatch(text.strip()) if isinstance(text, str) else None
    return found.group(1) if found else None


def _gone(code: int | None, error: Mapping[str, Any]) -> bool:
    """Graph's "no such object": code 803 ("Some of the aliases you requested do not
    exist") or code 100 with subcode 33 ("Object with ID ... does not exist, cannot be
    loaded due to missing permissions ..."), whatever the status they came with."""
    return code == 803 or (code == 100 and _code(error.get("error_subcode")) == 33)


def _says(error: Mapping[str, Any], pattern: re.Pattern[str]) -> bool:
    """Whether the error's message, or the one for its user, matches `pattern`."""
    texts = (error.get(k) for k in ("message", "error_user_msg", "error_user_title"))
    # Read no further than a message runs: a hostile 64 KiB one costs the pattern nothing.
    return any(isinstance(t, str) and pattern.search(t[:_MESSAGE_CHARS]) for t in texts)


def graph_body_errors(status: int, data: bytes, url: str) -> HttpError | None:
    """A reader for Graph answers: an `error` object decides, whatever the status."""
    body = _json_object(data)
    error = body.get("error") if body is not None else None
    if not isinstance(error, Mapping):
        return None
    return graph_error(error, url=url, status=status)


def _json_object(data: bytes) -> dict[str, Any] | None:
    if len(data) > MAX_ERROR_BODY or data.lstrip()[:1] != b"{":
        return None
    try:
        body = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None
