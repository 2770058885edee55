"""Builds every source from settings: the one place that knows which sources exist."""

from __future__ import annotations

from harvester.config import Settings
from harvester.http import HostSlots, HttpClient
from harvester.sources.base import Source
from harvester.sources.urls import UrlSource


def build_sources(settings: Settings, http: HttpClient) -> dict[str, Source]:
    cdn_slots = HostSlots(settings.cdn_per_host_concurrency)
    max_bytes = settings.max_image_bytes
    return {"urls": UrlSource(http, host_slots=cdn_slots, max_bytes=max_bytes)}
