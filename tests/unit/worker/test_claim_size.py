"""How many rows the daemon claims at once."""

from __future__ import annotations

from harvester.worker.daemon import claim_size


def test_no_claim_until_half_a_batch_fits() -> None:
    assert claim_size(room=15, batch=32, limit=128) == 0
    assert claim_size(room=0, batch=32, limit=128) == 0
    assert claim_size(room=16, batch=32, limit=128) == 16


def test_claims_come_in_few_sizes() -> None:
    sizes = {claim_size(room, batch=32, limit=128) for room in range(16, 129)}
    assert sizes == {16, 20, 24, 28, 32}


def test_a_window_smaller_than_four_is_claimed_whole() -> None:
    assert claim_size(room=3, batch=32, limit=3) == 3
    assert claim_size(room=1, batch=32, limit=1) == 1
    assert claim_size(room=7, batch=7, limit=7) == 4
