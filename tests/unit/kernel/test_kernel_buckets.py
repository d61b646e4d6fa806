"""Which server each bucket of the kernel's bucket map names (kernel/buckets.py)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from fulcrum.balance.wrr import smooth_sequence
from fulcrum.kernel.buckets import ServerState, assign, choosable


def servers(*weights: int, **changes: object) -> list[ServerState]:
    return [replace(ServerState(i, f"10.0.0.{i}:80", f"10.0.0.{i}", 80, w), **changes)  # type: ignore[arg-type]
            for i, w in enumerate(weights)]


def shares(table: list[ServerState | None]) -> Counter[str | None]:
    return Counter(s.key if s else None for s in table)


def test_smooth_sequence_interleaves_in_proportion() -> None:
    assert smooth_sequence([3, 1], 8) == [0, 0, 1, 0, 0, 0, 1, 0]
    assert Counter(smooth_sequence([5, 3, 2], 2520)) == {0: 1260, 1: 756, 2: 504}


def test_wrr_weights_and_rr_ignores_them() -> None:
    pool = servers(3, 1)
    assert shares(assign("wrr", pool, None, 2520)) == {"10.0.0.0:80": 1890, "10.0.0.1:80": 630}
    assert shares(assign("rr", pool, None, 2520)) == {"10.0.0.0:80": 1260, "10.0.0.1:80": 1260}


def test_down_drained_disabled_and_weight_zero_take_no_new_flows() -> None:
    pool = servers(1, 1, 1, 1, 0)
    pool[0] = replace(pool[0], healthy=False)
    pool[1] = replace(pool[1], state="drain")
    pool[2] = replace(pool[2], state="disabled")
    assert set(shares(assign("wrr", pool, None, 60))) == {"10.0.0.3:80"}
    assert pool[1].keeps_flows and not pool[0].keeps_flows and not pool[2].keeps_flows


def test_backups_then_emergency() -> None:
    pool = servers(1, 1)
    pool[1] = replace(pool[1], backup=True)
    assert [s.key for s in choosable(pool, None)] == ["10.0.0.0:80"]
    pool[0] = replace(pool[0], healthy=False)
    assert [s.key for s in choosable(pool, None)] == ["10.0.0.1:80"]
    pool[1] = replace(pool[1], healthy=False)
    emergency = ServerState(-1, "10.0.0.99:80", "10.0.0.99", 80, 1)
    assert set(shares(assign("rr", pool, emergency, 10))) == {"10.0.0.99:80"}
    assert set(shares(assign("rr", pool, None, 10))) == {None}


def test_lbset_tiers() -> None:
    pool = [replace(s, lbset=i) for i, s in enumerate(servers(1, 1))]
    assert [s.index for s in choosable(pool, None)] == [0]
    pool[0] = replace(pool[0], state="drain")
    assert [s.index for s in choosable(pool, None)] == [1]


def test_mh_moves_only_the_failed_servers_buckets_and_gives_them_back() -> None:
    pool = servers(1, 1, 1, 1)
    before = assign("mh", pool, None, 251)
    down = list(pool)
    down[2] = replace(down[2], healthy=False)
    after = assign("mh", down, None, 251)
    for old, new in zip(before, after, strict=True):
        assert old is not None and new is not None
        if old.index != 2:
            assert old.index == new.index  # every other server keeps its buckets
        else:
            assert new.index != 2
    assert assign("mh", pool, None, 251) == before  # back up: the same table
    assert abs(shares(before)["10.0.0.0:80"] - 251 / 4) < 251 / 10  # even shares


def test_mh_is_the_same_for_the_same_configuration() -> None:
    # two nodes compute the same table: a flow goes to the same server from either
    assert assign("mh", servers(2, 1, 1), None, 509) == assign("mh", servers(2, 1, 1), None, 509)
