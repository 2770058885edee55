"""What one job cost, carried with its outcome to the coordinating daemon, which counts it.

Whichever process fetched or processed an image, its timings and byte counts travel in
the outcome; a process with an HTTP client of its own adds that client's drained counts.
So the coordinator's metrics add up however the work is spread over processes.
"""

from __future__ import annotations

from dataclasses import dataclass

from harvester.http.stats import HttpStats


@dataclass(frozen=True)
class Measures:
    fetch_s: float | None = None
    process_s: float | None = None
    source_bytes: int | None = None
    stored_bytes: int | None = None
    http: HttpStats | None = None  # None when the coordinator's own client made the calls

    def __reduce__(self) -> tuple[object, ...]:
        """Pickled as its fields in order (it travels with every outcome), not as a dict of
        them."""
        return (
            Measures,
            (self.fetch_s, self.process_s, self.source_bytes, self.stored_bytes, self.http),
        )
