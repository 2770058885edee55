"""Every reason code harvester gives a failure, a skip or an error, in one list.

A row's ``reason`` column holds one of these (README, "Reason codes", says what each
means); `jobs list --reason` and `jobs retry --reason` take only these, so a typo is
refused rather than matching no row. tests/unit/test_reason_codes.py fails on a code
given anywhere in harvester that is not listed here, and on one the README's table lacks.
"""

from __future__ import annotations

import re

# The HTTP status of a refused request: http_404, http_429, http_503.
HTTP_STATUS = re.compile(r"http_[1-9][0-9]{2}")

REASONS = frozenset(
    {
        # the network and HTTP (harvester.http)
        "timeout", "connection", "truncated", "too_large", "too_slow", "bad_response",
        "bad_url", "tls", "too_many_redirects", "forbidden", "not_found", "invalid_key",
        "unavailable", "host_not_allowed", "http_error",
        # the APIs' own answers
        "service_unavailable", "transient", "too_much_data", "query_refused",
        "request_refused", "flickr_error",
        # the pixels (harvester.imaging)
        "not_an_image", "html", "empty", "bad_header", "unknown_format", "corrupt", "bomb",
        "too_small", "out_of_memory", "unsupported_mode", "encode_failed", "imaging_error",
        # skips a source decides before any download, and stored copies
        "no_size", "duplicate", "skipped",
        # the daemon and its workers
        "worker_lost", "lease_lost", "write_failed", "internal_error", "daemon_stopped",
        # settings and tasks another version wrote, what the operator gave
        "bad_payload", "bad_task", "no_source", "bad_config", "bad_input",
        # the database and storage
        "bad_record", "database_unavailable", "schema_too_new", "storage_unavailable",
        "output_unwritable", "campaign_busy",
        # any other error of harvester's (HarvesterError's own)
        "error",
    }
)  # fmt: skip

# Codes no version gives any more that rows kept from then may carry (none yet: the reason
# column came with the names above). A code renamed moves here, so it is still taken.
RETIRED: frozenset[str] = frozenset()

# Shown when a code is refused: the ones an operator filters by most.
COMMON = ("timeout", "connection", "too_slow", "not_found", "duplicate")


def is_reason(code: str) -> bool:
    """A code harvester gives (or an HTTP status's): one a row may carry."""
    return code in REASONS or code in RETIRED or HTTP_STATUS.fullmatch(code) is not None
