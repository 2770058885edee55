"""Builds every source from settings: the one place that knows which sources exist."""

from __future__ import annotations

import hashlib

from pydantic import SecretStr

from harvester.config import Settings
from harvester.http import (
    CircuitBreaker,
    Destinations,
    HostSlots,
    HttpClient,
    RateLimiter,
    TokenBucket,
)
from harvester.http.shared import SharedRates
from harvester.sources.base import Source
from harvester.sources.flickr import FlickrSource
from harvester.sources.mapillary import MapillarySource
from harvester.sources.urls import UrlSource


def breaker(settings: Settings, api: str) -> CircuitBreaker:
    """One per API per daemon: an outage pauses that API's work, not the others'."""
    return CircuitBreaker(
        api,
        probe_after_s=settings.outage_probe_seconds,
        max_probe_interval_s=12 * settings.outage_probe_seconds,
        max_pause_s=settings.outage_max_pause_seconds,
    )


def limiter(shared: SharedRates | None, key: str, rate_per_s: float, burst: float) -> RateLimiter:
    """A slice of the limit ``key`` shared through ``shared`` (by every process and daemon
    using the same key or host), or a local bucket without it."""
    if shared is None:
        return TokenBucket(rate_per_s, burst)
    return shared.limiter(key, rate_per_s, burst)


def key_name(service: str, secret: SecretStr | None) -> str:
    """A limit's name for a credential: a hash of it, never the credential itself."""
    if secret is None:
        return f"{service}:anonymous"
    return f"{service}:{hashlib.sha256(secret.get_secret_value().encode()).hexdigest()[:16]}"


def build_sources(
    settings: Settings,
    http: HttpClient,
    shared: SharedRates | None = None,
    *,
    share_of_hosts: int = 1,
) -> dict[str, Source]:
    """``share_of_hosts``: how many processes split each host's connection cap."""
    # Documented limits are aimed under by the margin; the CDN rate is our own politeness.
    under = 1.0 - settings.rate_margin
    cdn_rate = settings.cdn_rate_per_host_per_s
    # One CDN politeness cap shared by every source: they may fetch from the same hosts.
    cdn_slots = HostSlots(
        max(1, settings.cdn_per_host_concurrency // share_of_hosts),
        rate_for=lambda host: limiter(
            shared, f"host:{host}", cdn_rate, settings.cdn_per_host_concurrency
        ),
    )
    max_bytes = settings.max_image_bytes
    flickr_limiter = limiter(
        shared,
        key_name("flickr", settings.flickr_api_key),
        settings.flickr_rate_per_hour / 3600.0 * under,
        settings.flickr_burst,
    )
    token = settings.mapillary_token
    allow = settings.allow_networks
    return {
        "urls": UrlSource(
            http,
            host_slots=cdn_slots,
            max_bytes=max_bytes,
            destinations=Destinations.public(allow),
        ),
        "flickr": FlickrSource(
            http,
            api_url=settings.flickr_api_url,
            api_key=settings.flickr_api_key,
            limiter=flickr_limiter,
            breaker=breaker(settings, "flickr"),
            host_slots=cdn_slots,
            max_bytes=max_bytes,
            destinations=Destinations.provider(
                "flickr", settings.flickr_image_hosts, settings.flickr_api_url, allow
            ),
        ),
        "mapillary": MapillarySource(
            http,
            api_url=settings.mapillary_api_url,
            token=token,
            search_limiter=limiter(
                shared,
                key_name("mapillary.search", token),
                settings.mapillary_search_rate_per_s * under,
                settings.mapillary_burst,
            ),
            entity_limiter=limiter(
                shared,
                key_name("mapillary.entity", token),
                settings.mapillary_entity_rate_per_s * under,
                settings.mapillary_burst,
            ),
            breaker=breaker(settings, "mapillary"),
            host_slots=cdn_slots,
            max_bytes=max_bytes,
            destinations=Destinations.provider(
                "mapillary", settings.mapillary_image_hosts, settings.mapillary_api_url, allow
            ),
        ),
    }
