"""What one process's HTTP client did, as counts that add up across processes.

The coordinating daemon exports them. A worker process that fetches for it hands back
`drain()` (the counts since the last drain) with its outcomes, and the coordinator
`merge()`s them, so nothing depends on which process made the call.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field


@dataclass
class HttpStats:
    calls: Counter[tuple[str, str]] = field(default_factory=Counter)  # (api, status) -> calls
    retries: Counter[str] = field(default_factory=Counter)  # api -> attempts made again
    throttled: Counter[str] = field(default_factory=Counter)  # api -> 429 answers
    # api -> seconds spent waiting for a rate limiter's token
    limiter_wait_s: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))

    def call(self, api: str, status: int | str) -> None:
        self.calls[api, str(status)] += 1
        if status == 429:
            self.throttled[api] += 1

    def drain(self) -> HttpStats:
        """The counts so far, leaving this one empty."""
        drained = HttpStats(self.calls, self.retries, self.throttled, self.limiter_wait_s)
        self.calls, self.retries = Counter(), Counter()
        self.throttled, self.limiter_wait_s = Counter(), defaultdict(float)
        return drained

    def __reduce__(self) -> tuple[object, ...]:
        """Pickled as plain dicts (one travels with every outcome): a third of the bytes and
        of the CPU of pickling the Counters themselves."""
        counts = (self.calls, self.retries, self.throttled, self.limiter_wait_s)
        return (_rebuilt, tuple(dict(c) for c in counts))

    def merge(self, other: HttpStats) -> None:
        self.calls.update(other.calls)
        self.retries.update(other.retries)
        self.throttled.update(other.throttled)
        for api, seconds in other.limiter_wait_s.items():
            self.limiter_wait_s[api] += seconds


def _rebuilt(
    calls: dict[tuple[str, str], int],
    retries: dict[str, int],
    throttled: dict[str, int],
    limiter_wait_s: dict[str, float],
) -> HttpStats:
    return HttpStats(
        Counter(calls), Counter(retries), Counter(throttled), defaultdict(float, limiter_wait_s)
    )
