"""Connection- and load-following schedulers: lc, wlc, sed, nq, pen weight,
prio, fo, ovf, bybusyness, bytraffic and random2."""

from __future__ import annotations

import pytest
from balance_helpers import (
    backends,
    closed_loop,
    ctx,
    expected_shares,
    pick_counts,
    picked_key,
    scheduler,
    set_active,
    shares,
    up_only,
)


@pytest.mark.parametrize("name", ["lc", "wlc", "sed", "nq", "weight", "bybusyness"])
def test_follows_active_counts(name: str) -> None:
    pool = backends([1, 1, 1])
    sched = scheduler(name, pool)
    set_active(pool, 5, 2, 7)
    assert sched.pick(ctx()) is pool[1]
    set_active(pool, 1, 4, 2)
    assert sched.pick(ctx()) is pool[0]
    sched.released(pool[0])
    set_active(pool, 3, 3, 0)
    assert sched.pick(ctx()) is pool[2]


def test_lc_ignores_weight() -> None:
    pool = backends([1, 10])
    set_active(pool, 1, 2)
    assert scheduler("lc", pool).pick(ctx()) is pool[0]


@pytest.mark.parametrize("name", ["wlc", "weight"])
def test_wlc_divides_by_weight(name: str) -> None:
    pool = backends([1, 10])
    sched = scheduler(name, pool)
    set_active(pool, 1, 9)  # 1/1 > 9/10
    assert sched.pick(ctx()) is pool[1]
    set_active(pool, 1, 11)  # 1/1 < 11/10
    assert sched.pick(ctx()) is pool[0]


def test_sed_counts_the_new_connection() -> None:
    # Both idle: wlc sees 0/1 == 0/5 and keeps the first; sed compares 1/1 with 1/5.
    pool = backends([1, 5])
    assert scheduler("wlc", pool).pick(ctx()) is pool[0]
    assert scheduler("sed", pool).pick(ctx()) is pool[1]
    set_active(pool, 0, 5)  # sed: 1/1 < 6/5
    assert scheduler("sed", pool).pick(ctx()) is pool[0]


def test_nq_prefers_any_idle_server_then_sed() -> None:
    pool = backends([1, 10, 1])
    sched = scheduler("nq", pool)
    set_active(pool, 3, 2, 0)  # sed would take the weight-10 server; nq takes the idle one
    assert sched.pick(ctx()) is pool[2]
    set_active(pool, 3, 2, 1)  # nobody idle: sed, (2+1)/10 is least
    assert sched.pick(ctx()) is pool[1]


@pytest.mark.parametrize("name", ["wlc", "sed", "nq", "weight"])
def test_load_spreads_by_weight_under_closed_loop(name: str) -> None:
    """60 connections always open, 6000 picks: picks follow the weights within 2%."""
    pool = backends([1, 2, 3])
    counts = closed_loop(scheduler(name, pool), 6000, in_flight=60)
    for share, expected in zip(shares(counts, pool), expected_shares(pool), strict=True):
        assert abs(share - expected) < 0.02


@pytest.mark.parametrize("name", ["lc", "bybusyness"])
def test_unweighted_busyness_spreads_evenly_under_closed_loop(name: str) -> None:
    """lc and Apache's bybusyness compare raw active counts (weight only breaks
    bybusyness ties), so under steady load every server gets the same share."""
    pool = backends([1, 2, 3])
    counts = closed_loop(scheduler(name, pool), 6000, in_flight=60)
    assert max(counts.values()) - min(counts.values()) <= 1


@pytest.mark.parametrize("name", ["lc", "wlc", "sed", "nq", "weight", "bybusyness", "random2"])
def test_down_server_is_skipped_and_taken_back(name: str) -> None:
    pool = backends([1, 1, 1])
    sched = scheduler(name, pool, {"seed": 3})
    down = up_only([pool[0]])
    assert pool[0].key not in closed_loop(sched, 300, 10, ctx(down))
    sched.rebuild()
    for backend in pool:
        backend.active = 0
    assert closed_loop(sched, 300, 10, ctx())[pool[0].key] > 0


def test_bybusyness_ties_share_by_weight() -> None:
    """All idle (no connection ever held): the lbstatus tie-break spreads 1:3."""
    pool = backends([1, 3])
    counts = pick_counts(scheduler("bybusyness", pool), 400)
    assert [counts[b.key] for b in pool] == [100, 300]


def test_bytraffic_least_bytes_per_weight() -> None:
    pool = backends([1, 2, 4])
    sched = scheduler("bytraffic", pool)
    for backend, traffic in zip(pool, [1000, 1500, 4400], strict=True):
        backend.traffic = traffic  # per weight: 1000, 750, 1100
    assert sched.pick(ctx()) is pool[1]
    pool[1].traffic = 2400  # 1200 per weight
    assert sched.pick(ctx()) is pool[0]


def test_bytraffic_evens_out_bytes_by_weight() -> None:
    pool = backends([1, 2, 3])
    sched = scheduler("bytraffic", pool)
    for _ in range(6000):
        chosen = sched.pick(ctx())
        assert chosen is not None
        chosen.traffic += 1500
    total = sum(b.traffic for b in pool)
    for backend, expected in zip(pool, expected_shares(pool), strict=True):
        assert abs(backend.traffic / total - expected) < 0.01


def test_prio_lowest_priority_then_fewest_connections() -> None:
    pool = backends([1, 1, 1, 1])
    for backend, priority in zip(pool, [2, 0, 0, 1], strict=True):
        backend.priority = priority
    sched = scheduler("prio", pool)
    set_active(pool, 0, 4, 3, 0)
    assert sched.pick(ctx()) is pool[2]
    assert sched.pick(ctx(up_only(pool[1:3]))) is pool[3]
    assert sched.pick(ctx(up_only(pool[1:4]))) is pool[0]


def test_fo_highest_weight_usable() -> None:
    pool = backends([5, 9, 9, 2])
    sched = scheduler("fo", pool)
    assert pick_counts(sched, 50)[pool[1].key] == 50
    assert sched.pick(ctx(up_only([pool[1]]))) is pool[2]
    assert sched.pick(ctx(up_only(pool[1:3]))) is pool[0]


def test_ovf_fills_the_heaviest_then_overflows() -> None:
    pool = backends([2, 5, 3])
    sched = scheduler("ovf", pool)
    sequence = []
    for _ in range(13):
        chosen = sched.pick(ctx())
        assert chosen is not None
        chosen.active += 1
        sequence.append(pool.index(chosen))
    # IPVS skips a server only once active > weight: each takes weight + 1.
    assert sequence == [1] * 6 + [2] * 4 + [0] * 3
    assert sched.pick(ctx()) is None  # every server past its weight
    pool[1].active -= 1
    assert sched.pick(ctx()) is pool[1]


def test_random2_seed_repeats_and_prefers_the_less_loaded() -> None:
    pool = backends([1, 1, 1, 1])
    one = scheduler("random2", pool, {"seed": 9})
    two = scheduler("random2", pool, {"seed": 9})
    assert [one.pick(ctx()) for _ in range(50)] == [two.pick(ctx()) for _ in range(50)]
    # Two servers only: both are always drawn, so the less loaded always wins.
    pair = backends([1, 1])
    set_active(pair, 5, 1)
    sched = scheduler("random2", pair, {"seed": 1})
    assert {picked_key(sched, ctx()) for _ in range(40)} == {pair[1].key}


def test_random2_spreads_load_by_weight() -> None:
    pool = backends([1, 2, 3])
    counts = closed_loop(scheduler("random2", pool, {"seed": 5}), 6000, in_flight=60)
    for share, expected in zip(shares(counts, pool), expected_shares(pool), strict=True):
        assert abs(share - expected) < 0.03
