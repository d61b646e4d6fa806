"""random: weighted random choice (the scheduler nftables runs as `numgen random`)."""

from __future__ import annotations

from collections import Counter

from fulcrum.balance.base import Backend, PickContext
from fulcrum.balance.registry import make_scheduler


def test_random_draws_in_proportion_to_weight() -> None:
    pool = [Backend(key=f"s{i}", address="10.0.0.1", port=80 + i, weight=w) for i, w in enumerate((3, 1, 0))]
    scheduler = make_scheduler("random", pool, {"seed": 3})
    drawn = Counter(scheduler.pick(PickContext(usable=lambda b: True)).key for _ in range(4000))  # type: ignore[union-attr]
    assert set(drawn) == {"s0", "s1"}  # weight 0 never
    assert 2.5 < drawn["s0"] / drawn["s1"] < 3.5
