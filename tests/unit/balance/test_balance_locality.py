"""lblc and lblcr: keys keep their servers until overload, sets grow and
shrink, entries expire on ctx.now, and the key table stays bounded."""

from __future__ import annotations

import pytest
from balance_helpers import backends, client_keys, ctx, scheduler, set_active, up_only

from fulcrum.balance.lblc import LocalityBasedLeastConnection
from fulcrum.balance.lblcr import LocalityBasedLeastConnectionReplicated

KEY = "origin.example"


@pytest.mark.parametrize("name", ["lblc", "lblcr"])
def test_key_stays_while_not_overloaded(name: str) -> None:
    pool = backends([4, 4, 4])
    sched = scheduler(name, pool)
    home = sched.pick(ctx(key=KEY))
    assert home is pool[0]  # all idle: wlc takes the first
    set_active(pool, 4, 0, 0)  # busier than the others but not past its weight
    assert sched.pick(ctx(key=KEY, now=1)) is home
    set_active(pool, 5, 3, 3)  # past its weight, but nobody is below half of theirs
    assert sched.pick(ctx(key=KEY, now=2)) is home


@pytest.mark.parametrize("name", ["lblc", "lblcr"])
def test_overloaded_server_gives_the_key_away(name: str) -> None:
    pool = backends([4, 4, 4])
    sched = scheduler(name, pool)
    assert sched.pick(ctx(key=KEY)) is pool[0]
    set_active(pool, 5, 3, 1)  # pool[0] past its weight; pool[2] below half (2*1 < 4)
    assert sched.pick(ctx(key=KEY, now=1)) is pool[2]
    set_active(pool, 0, 3, 2)
    # lblc: the key now lives on pool[2]; lblcr: its set is {0, 2}, least loaded first
    expected = pool[2] if name == "lblc" else pool[0]
    assert sched.pick(ctx(key=KEY, now=2)) is expected


def test_lblc_unusable_server_reassigns_and_key_stays_moved() -> None:
    pool = backends([1, 1, 1])
    sched = scheduler("lblc", pool)
    assert sched.pick(ctx(key=KEY)) is pool[0]
    moved = sched.pick(ctx(up_only([pool[0]]), key=KEY, now=1))
    assert moved is pool[1]
    sched.rebuild()
    assert sched.pick(ctx(key=KEY, now=2)) is pool[1]  # locality kept after it comes back


def test_lblcr_skips_unusable_members() -> None:
    pool = backends([4, 4, 4])
    sched = scheduler("lblcr", pool)
    sched.pick(ctx(key=KEY))
    set_active(pool, 5, 3, 1)
    sched.pick(ctx(key=KEY, now=1))  # set {0, 2}
    set_active(pool, 0, 0, 3)
    assert sched.pick(ctx(up_only([pool[0]]), key=KEY, now=2)) is pool[2]


@pytest.mark.parametrize("name", ["lblc", "lblcr"])
def test_unused_key_expires(name: str) -> None:
    pool = backends([4, 4])
    sched = scheduler(name, pool, {"expiry": 60})
    assert sched.pick(ctx(key=KEY, now=0)) is pool[0]
    set_active(pool, 3, 0)  # remembered server is fine, wlc alone would take pool[1]
    assert sched.pick(ctx(key=KEY, now=59)) is pool[0]
    assert sched.pick(ctx(key=KEY, now=118)) is pool[0]  # each use renews the entry
    assert sched.pick(ctx(key=KEY, now=179)) is pool[1]  # 61 s unused: forgotten


def test_lblcr_set_shrinks_after_set_expiry() -> None:
    pool = backends([4, 4, 4])
    sched = scheduler("lblcr", pool, {"set_expiry": 100})
    sched.pick(ctx(key=KEY, now=0))
    set_active(pool, 5, 3, 1)
    assert sched.pick(ctx(key=KEY, now=10)) is pool[2]  # set {0, 2}, modified at 10
    set_active(pool, 1, 3, 2)
    assert sched.pick(ctx(key=KEY, now=50)) is pool[0]  # set unchanged, least loaded member
    # 100 s without change: the busiest member (pool[2]: 2/4 > 1/4) is dropped
    assert sched.pick(ctx(key=KEY, now=111)) is pool[0]
    set_active(pool, 3, 3, 0)
    assert sched.pick(ctx(key=KEY, now=112)) is pool[0]  # pool[2] is no longer a member


@pytest.mark.parametrize("name", ["lblc", "lblcr"])
def test_table_is_bounded(name: str) -> None:
    pool = backends([1, 1])
    sched = scheduler(name, pool, {"table_size": 100})
    keys = client_keys(1000)
    for now, key in enumerate(keys):
        sched.pick(ctx(key=key, now=float(now)))
    assert isinstance(sched, LocalityBasedLeastConnection | LocalityBasedLeastConnectionReplicated)
    assert len(sched.table) == 100
    # the most recent keys are the ones kept
    set_active(pool, 0, 0)
    first_home = {key: sched.pick(ctx(key=key, now=1000.0)) for key in keys[-5:]}
    assert all(home is not None for home in first_home.values())
    assert len(sched.table) == 100


@pytest.mark.parametrize("name", ["lblc", "lblcr"])
def test_keys_spread_by_least_connection(name: str) -> None:
    pool = backends([1, 1, 1])
    sched = scheduler(name, pool)
    for key in client_keys(30):
        chosen = sched.pick(ctx(key=key))
        assert chosen is not None
        chosen.active += 1
    assert [b.active for b in pool] == [10, 10, 10]


def test_bad_option_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="option expiry: must be a positive number"):
        scheduler("lblc", backends([1]), {"expiry": "soon"})
