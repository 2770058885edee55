"""The one redactor: what a secret looks like, and text and URLs with every secret blanked.

Logs (`harvester.log`), HTTP errors (`harvester.http`) and anything stored or shown go
through here, so one marker and one set of rules hold everywhere. Public API:

- `REDACTED`, the marker a secret is replaced by;
- `is_credential_param(name)`, whether a query parameter carries a credential;
- `is_secret_field(name)`, whether a log field of that name holds one;
- `redact_url(url)`, a URL with credential values (query, fragment) and any password blanked;
- `public_url(url)`, a URL fit to publish in a file or an export: no userinfo, no
  credential-like parameter (signed CDN ones included), no fragment;
- `public_text(text)`, free text fit to publish: its words kept, each URL in it made public;
- `credential_values(pairs)`, the values of the credential parameters among name/value pairs;
- `redact_text(text, secrets)`, free text with credentials and the given values blanked;
- `shown_input_url(text)`, a URL an operator gave, however malformed, fit to show back;
- `Redactor`, a set of known secret values (keys, tokens) that `redact_text`s with them.

Imports nothing of harvester: every room may use it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

import yarl

REDACTED = "REDACTED"

# The one list of query parameter names that are, or sign, a credential: their values are
# blanked in logs and errors (`redact_url`, `redact_text`) and the parameters dropped from
# published URLs (`public_url`). Exact names are short or generic; fragments and prefixes
# catch the long tail (X-Amz-Signature, client_secret, oauth_token, apikey).
CREDENTIAL_EXACT = frozenset(
    {
        "key",
        "sig",
        "sid",
        "auth",
        "code",
        "hmac",
        "hdnts",
        "policy",
        "ticket",
        "expires",
        "api_sig",
        "key-pair-id",
        "googleaccessid",
        "__gda__",
        "oh",  # Facebook/Mapillary CDN signature and its expiry
        "oe",
        "_nc_ohc",
        "_nc_sid",
    }
)
CREDENTIAL_FRAGMENTS = (
    "token",
    "secret",
    "signature",
    "password",
    "passwd",
    "apikey",
    "api_key",
    "credential",
    "session",
    "jwt",
)
CREDENTIAL_PREFIXES = ("x-amz-", "x-goog-", "x-oss-", "x-cos-")


def is_credential_param(name: str) -> bool:
    """True if a query parameter of this name carries or signs a credential (signed-URL
    companions such as Expires included): blanked when shown, dropped when published."""
    lowered = name.strip().lower()
    return (
        lowered in CREDENTIAL_EXACT
        or any(f in lowered for f in CREDENTIAL_FRAGMENTS)
        or lowered.startswith(CREDENTIAL_PREFIXES)
    )


_NAME_CHARS = r"[A-Za-z0-9_.\-]"
_FRAGMENT_RE = "|".join(re.escape(f) for f in sorted(CREDENTIAL_FRAGMENTS, key=len, reverse=True))
_PREFIX_RE = "|".join(re.escape(p) for p in CREDENTIAL_PREFIXES)
_EXACT_RE = "|".join(re.escape(n) for n in sorted(CREDENTIAL_EXACT, key=len, reverse=True))
_NAME_RE = rf"{_NAME_CHARS}*?(?:{_FRAGMENT_RE}){_NAME_CHARS}*|(?:{_PREFIX_RE}){_NAME_CHARS}*"
# name=value inside free text (an aiohttp message quoting a URL, for instance).
_PARAM_IN_TEXT = re.compile(rf"(?i)(?<!{_NAME_CHARS})((?:{_NAME_RE}|{_EXACT_RE})=)[^&#\s'\"<>]+")
# user:password@ in a URL quoted inside free text.
_USERINFO_IN_TEXT = re.compile(r"(?i)(\b[a-z][a-z0-9+.\-]*://[^/\s:@'\"]+:)[^/\s@'\"]+@")
# An Authorization header value quoted in text: "OAuth MLY|...", "Bearer ..." (no token
# holds a parenthesis: "(Bearer x)" keeps its closing one).
_AUTH_IN_TEXT = re.compile(r"((?:OAuth|Bearer)\s+)[^\s\"',)]+")
# A URL quoted in free text: up to a space, quote or angle bracket (an HTML href's end), less
# the punctuation closing its sentence.
_URL_IN_TEXT = re.compile(r"(?i)\b[a-z][a-z0-9+.\-]*://[^\s'\"<>]*[^\s'\"<>.,;:!?)\]}]")
# Field names whose values are secrets whatever they hold; `auth` only as a word of its
# own (auth, x_auth, auth-header), not inside author or oauth.
_SECRET_FIELD = re.compile(
    r"api_?key|token|secret|passw(?:or)?d|authorization|signature|credential"
    r"|(?<![a-z])auth(?![a-z])",
    re.I,
)


def is_secret_field(name: str) -> bool:
    """True if a field of this name (a log field, a URL list's column) holds a secret: its
    value is never shown."""
    return _SECRET_FIELD.search(name) is not None


def redact_url(url: str | yarl.URL) -> str:
    """The URL with credential values (query and fragment) and any password blanked, safe
    to log or show."""
    try:
        parsed = url if isinstance(url, yarl.URL) else yarl.URL(url)
        if parsed.password is not None:
            parsed = parsed.with_password(REDACTED)
        if parsed.query_string:
            query = [
                (name, REDACTED if is_credential_param(name) else value)
                for name, value in parsed.query.items()
            ]
            parsed = parsed.with_query(query)
        if parsed.fragment:
            # A fragment is never sent, but OAuth puts tokens there (#access_token=...).
            parsed = parsed.with_fragment(redact_text(parsed.fragment))
        return str(parsed)
    except (ValueError, TypeError):
        # A URL yarl refuses is still shown, through the text scrubber.
        return redact_text(str(url))


# A secret value this short is no credential (code=1, oe=5): blanking it everywhere in a
# text would garble the text (HTTP 401 -> HTTP 40REDACTED). It is still blanked where it
# stands: as a credential parameter's value (name=value) or an Authorization header's.
MIN_FREE_TEXT_SECRET = 8


def credential_values(pairs: Iterable[tuple[str, str]]) -> list[str]:
    """The values of the credential parameters among these (name, value) pairs."""
    return [value for name, value in pairs if is_credential_param(name) and value]


def _secret_forms(secret: str) -> list[str]:
    """The ways a secret can be spelt in text: as is and percent-encoded."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret, safe=""), quote(secret)}
    return sorted((f for f in forms if f), key=len, reverse=True)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Text with credential parameters, URL passwords, auth header values and every given
    secret (as is or percent-encoded) replaced by REDACTED; a given secret shorter than
    MIN_FREE_TEXT_SECRET only where it stands as one of those."""
    # Each pattern needs a character or word most texts lack (every fetched URL is shown
    # redacted): a search that cannot match is not run.
    if "=" in text:
        text = _PARAM_IN_TEXT.sub(rf"\g<1>{REDACTED}", text)
    if "@" in text:
        text = _USERINFO_IN_TEXT.sub(rf"\g<1>{REDACTED}@", text)
    if "OAuth" in text or "Bearer" in text:
        text = _AUTH_IN_TEXT.sub(rf"\g<1>{REDACTED}", text)
    for secret in secrets:
        if len(secret) < MIN_FREE_TEXT_SECRET:
            continue
        for form in _secret_forms(secret):
            text = text.replace(form, REDACTED)
    return text


class Redactor:
    """The secret values a process knows (its API keys and tokens), blanked wherever seen."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._values = [s for s in secrets if s]

    def add(self, secret: str | None) -> None:
        if secret and secret not in self._values:
            self._values.append(secret)

    def redact(self, text: str) -> str:
        return redact_text(text, self._values)


# Whatever stands before an @ in a URL's authority, with or without a scheme: "bob:pw@host".
_LEADING_USERINFO = re.compile(r"(?i)^([a-z][a-z0-9+.\-]*://)?[^/?#\s]*@")


def shown_input_url(text: str, limit: int = 80) -> str:
    """A URL from an operator's list, shown back in a refusal: its userinfo (user too) and
    credential values blanked before it is cut to ``limit`` characters, so neither a
    scheme we refuse nor a cut in the middle of a password lets one through."""
    text = _LEADING_USERINFO.sub(rf"\g<1>{REDACTED}@", text.strip(), count=1)
    return redact_text(text)[:limit]


def public_url(url: str) -> str:
    """The URL fit to publish (a file, an export, a page): without userinfo, credential-like
    query parameters or fragment.

    A URL that cannot be parsed is dropped to its scheme and host, or to nothing: a
    published file is better without a link than with a leaked one.
    """
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return ""
    if not parts.scheme or not host:
        return ""
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(name, value) for name, value in pairs if not is_credential_param(name)]
    query = urlencode(kept) if len(kept) != len(pairs) else parts.query
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def public_text(text: str) -> str:
    """Free text fit to publish (a photo's description): its words kept, each URL in it made
    public as `public_url` makes it, then credentials left in the words blanked as
    `redact_text` blanks them. Only what is a URL is cut as one: a description quoting a link
    keeps every word around it."""
    if "://" in text:
        text = _URL_IN_TEXT.sub(lambda found: _public_quoted(found.group()), text)
    return redact_text(text)


def _public_quoted(url: str) -> str:
    """`public_url` of a URL quoted in text; in an HTML href (Flickr's descriptions) its
    `&amp;` is read as the `&` it stands for, so `&amp;sig=` is the `sig` it is, and
    written back as it was."""
    if "&amp;" not in url:
        return public_url(url)
    return public_url(url.replace("&amp;", "&")).replace("&", "&amp;")
