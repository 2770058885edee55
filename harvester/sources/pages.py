"""What of a photo's record is published, per provider: its public page (written into EXIF
and into every export), and which of a URL list's own columns are its secrets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from harvester.redact import is_secret_field, public_url

MAPILLARY_PAGE = "https://www.mapillary.com/app/?pKey={id}"


def page_url(
    provider: str, provider_id: str, raw: Mapping[str, Any] | None, source_url: str | None
) -> str | None:
    # Ids are a provider's text (printable, otherwise anything): each is percent-encoded, so
    # an owner `x/../../people/y` or `a) [b](javascript:...)` cannot move or end the link.
    if provider == "flickr":
        owner = raw.get("owner") if raw else None
        if not isinstance(owner, str) or not owner:
            return None
        path = f"{quote(owner, safe='@')}/{quote(provider_id, safe='')}"
        return f"https://www.flickr.com/photos/{path}"
    if provider == "mapillary":
        return MAPILLARY_PAGE.format(id=quote(provider_id, safe=""))
    # A URL list's photo has no page but its URL: no credential may travel with the dataset.
    return (public_url(source_url) or None) if source_url else None


def secret_columns(provider: str, raw: Mapping[str, Any]) -> list[str]:
    """A URL list's extra columns named like secrets (api_key, session_token, password,
    auth): the list's own credentials, dropped from exports and blanked where shown. Only a
    URL list's: Flickr's `secret` is part of its file names (id_secret_server_owner.jpg)."""
    if provider != "urls":
        return []
    return [name for name in raw if is_secret_field(name)]
