"""Builds every source from settings: the one place that knows which sources exist."""

from __future__ import annotations

from harvester.config import Settings
from harvester.http import CircuitBreaker, Destinations, HostSlots, HttpClient, TokenBucket
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


def build_sources(settings: Settings, http: HttpClient) -> dict[str, Source]:
    # One CDN politeness cap shared by every source: they may fetch from the same hosts.
    cdn_slots = HostSlots(settings.cdn_per_host_concurrency)
    max_bytes = settings.max_image_bytes
    flickr_limiter = TokenBucket(settings.flickr_rate_per_hour / 3600.0, settings.flickr_burst)
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
            token=settings.mapillary_token,
            search_limiter=TokenBucket(
                settings.mapillary_search_rate_per_s, settings.mapillary_burst
            ),
            entity_limiter=TokenBucket(
                settings.mapillary_entity_rate_per_s, settings.mapillary_burst
            ),
            breaker=breaker(settings, "mapillary"),
            host_slots=cdn_slots,
            max_bytes=max_bytes,
            destinations=Destinations.provider(
                "mapillary", settings.mapillary_image_hosts, settings.mapillary_api_url, allow
            ),
        ),
    }
