"""What each table and column an operator reads means: the README's "The job tables" and
the Postgres COMMENTs (`\\d+ images` in psql) are this text. Imports nothing."""

from __future__ import annotations

QUEUE_COLUMNS: dict[str, str] = {
    "id": "Row id; `harvester jobs show ID` prints every column of one row.",
    "campaign_id": "The campaign (campaigns.id) this row belongs to.",
    "state": "queued -> running -> done (tasks) or stored|skipped (images), or failed|cancelled.",
    "attempts": "Attempts in the current round; back-off grows with it until max_attempts.",
    "max_attempts": "Attempts allowed per round before the row fails for good.",
    "throttles": "Tries the server deferred (429, Retry-After) this round; not attempts.",
    "not_before": "Not claimed before this time (retry back-off, Retry-After).",
    "lease_owner": "Daemon holding the row while running (host:pid:start:random).",
    "lease_expires_at": "The lease ends here unless renewed; then another daemon rescues the row.",
    "last_error": "Human message of the last failure (redacted); kept when requeued.",
    "reason": "Stable short code of the last failure or skip (http_404, timeout, duplicate).",
    "retryable": "True if that failure was transient: `jobs retry` requeues these by default.",
    "requeues": "Times an operator queued the row again (attempts restart, reason stays).",
    "created_at": "When the row was written.",
    "updated_at": "Last change of any column.",
    "finished_at": "When the row reached its final state; rates and ETAs count these.",
    "finished_by": "The daemon that recorded the final state.",
}

TABLES: dict[str, tuple[str, dict[str, str]]] = {
    "campaigns": (
        "A named harvest and its settings, as submitted.",
        {
            "id": "Campaign id.",
            "name": "Unique name given with --campaign.",
            "provider": "flickr, mapillary or urls.",
            "settings": "The submitted settings (sizes, licences, bbox, ...) as JSON.",
            "created_at": "When it was first submitted.",
            "paused_at": "Set while paused: daemons claim none of its rows; NULL when running.",
            "paused_reason": "Why: paused (an operator), invalid_key (the API refused the key) "
            "or submit_failed (its submit failed after a daemon began on it).",
            "paused_message": "The refusal or note that paused it (redacted).",
            "creating_submit": "The submit still making it alone (NULL once it finished "
            "or another submit added).",
        },
    ),
    "tasks": (
        "Query work (a Flickr time window, a Mapillary tile or sequence) that adds images.",
        {
            **QUEUE_COLUMNS,
            "kind": "What the task does (flickr_window, mapillary_tile, ...).",
            "payload": "The task's parameters as JSON (query, window, tile, ...).",
            "dedupe_key": "Unique: submitting the same query again is a no-op.",
            "result": "What the task found (counts of new and known images) as JSON.",
        },
    ),
    "images": (
        "One row per provider photo: its download state and its record.",
        {
            **QUEUE_COLUMNS,
            "provider": "flickr, mapillary or urls.",
            "provider_id": "The provider's id; unique with provider (one file per photo).",
            "group_name": "Keyword, sequence or tile directory under the provider.",
            "shard": "Directory number under the group (at most 1000 files each).",
            "file_name": "File name inside the shard.",
            "path": "Path under the storage root; set once the file is stored.",
            "source_url": "Where it is fetched from (may carry a key: redact before sharing).",
            "source_width": "Width of the original, in pixels.",
            "source_height": "Height of the original, in pixels.",
            "width": "Width of the stored JPEG.",
            "height": "Height of the stored JPEG.",
            "sha256": "SHA-256 of the stored file.",
            "source_sha256": "SHA-256 of the downloaded bytes (duplicates share it).",
            "bytes": "Size of the stored file.",
            "frame": "Border widths removed (top, right, bottom, left) as JSON.",
            "duplicate_of": "For a skipped duplicate: the image stored with the same bytes.",
            "lat": "Latitude (WGS84).",
            "lon": "Longitude (WGS84).",
            "accuracy": "Provider's geo accuracy (Flickr 1-16).",
            "captured_at": "When the photo was taken, in UTC; empty when the provider gives "
            "no time zone (Flickr: see captured_local).",
            "captured_local": "When the photo was taken by the camera's wall clock, no zone: "
            "naive ISO 8601 to the provider's precision (Flickr's datetaken: "
            "2019-05-04T12:30:00, 2019-05 or 2019).",
            "uploaded_at": "When it was uploaded.",
            "heading": "Compass direction of the camera, degrees.",
            "is_pano": "True for a 360-degree panorama.",
            "sequence_id": "Mapillary sequence.",
            "owner": "Provider's owner id.",
            "owner_name": "Owner's display name (attribution).",
            "title": "Title given by the owner.",
            "tags": "Tags given by the owner.",
            "license_id": "Licence id (licenses.license_id of the same provider).",
            "raw": "The provider's record as received, JSON.",
            "skip_reason": "Human message of a skip; the code is in reason.",
            "phash": "64-bit perceptual hash of the stored picture (hex); "
            "near-duplicates are close in Hamming distance.",
        },
    ),
    "image_hits": (
        "Which campaign and query found an image (found twice: stored once, listed twice).",
        {
            "image_id": "The image (images.id).",
            "campaign_id": "The campaign whose query found it.",
            "query": "The keyword, tile or sequence that found it.",
            "role": "Its role in a pairs list (query or database), if any.",
            "detail": "Extra facts from the finder as JSON.",
            "created_at": "When it was found.",
        },
    ),
    "licenses": (
        "Provider licence ids with their names and URLs.",
        {
            "provider": "flickr, mapillary or urls.",
            "license_id": "The provider's licence id.",
            "name": "Licence name.",
            "url": "Licence text URL.",
        },
    ),
}
