"""A batch of outcomes the database refused, written row by row (daemon._record_each)."""

from __future__ import annotations

from typing import Any

from harvester.errors import RecordRefused
from harvester.outcomes import Failure, Outcome, Result
from harvester.worker.daemon import _record_each


class RefusingQueue:
    """Refuses every row named in `refused`, whatever is written for it (its failure too)."""

    def __init__(self, refused: set[int]) -> None:
        self.refused = refused
        self.written: list[Result] = []

    async def finish(self, owner: str, outcomes: list[Outcome]) -> dict[int, str]:
        self._write(outcomes)
        return {o.id: o.state for o in outcomes}

    async def fail(self, owner: str, failures: list[Failure]) -> dict[int, str]:
        self._write(failures)
        return {f.id: "failed" for f in failures}

    def _write(self, results: list[Any]) -> None:
        if any(r.id in self.refused for r in results):
            raise RecordRefused("value refused")
        self.written.extend(results)


async def test_a_row_whose_failure_is_refused_too_is_let_go_not_raised() -> None:
    queue = RefusingQueue(refused={2})
    results: list[Result] = [Outcome(1, "stored"), Outcome(2, "stored"), Outcome(3, "stored")]
    recorded, left_as = await _record_each(queue, "me", results)  # type: ignore[arg-type]
    assert [r.id for r in recorded] == [1, 2, 3]  # all let go from the daemon's hold
    assert [r.id for r in queue.written] == [1, 3] and 2 not in left_as
