"""The state workers share: counters summed over per-worker rows, the client table, and
a pool whose choices follow node-wide counts. Worker 1 is a forked child, as in
cli/workers.py."""

from __future__ import annotations

import copy
import os

from fulcrum.balance.pool import PoolRuntime
from fulcrum.config.model import Pool
from fulcrum.shared import SharedState
from fulcrum.shared.counters import ACTIVE, TOTAL


def in_child(action) -> None:  # type: ignore[no-untyped-def]
    pid = os.fork()
    if pid == 0:
        try:
            action()
        finally:
            os._exit(0)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def test_each_worker_writes_its_row_and_readers_see_the_sum():
    shared = SharedState.create(2, 1024)
    try:
        shared.bind_worker(0)
        slot = shared.counters.claim("web", "198.18.0.21:80")
        shared.counters.add(slot, ACTIVE, 2)

        def worker_1() -> None:
            shared.bind_worker(1)
            assert shared.counters.claim("web", "198.18.0.21:80") == slot  # same server, same slot
            shared.counters.add(slot, ACTIVE, 3)
            shared.counters.add(slot, TOTAL, 3)

        in_child(worker_1)
        assert shared.counters.read(slot) == (5, 3, 0, 0)
        shared.bind_worker(1)  # a restarted worker 1: its dead connections are gone
        assert shared.counters.read(slot) == (2, 0, 0, 0)
    finally:
        shared.close()


def test_a_released_slot_is_reused_only_when_idle():
    shared = SharedState.create(1, 1024)
    shared.bind_worker(0)
    first = shared.counters.claim("web", "a")
    shared.counters.add(first, ACTIVE, 1)
    shared.counters.release(first)  # removed from the configuration, one connection still open
    assert shared.counters.claim("web", "b") != first
    shared.counters.add(first, ACTIVE, -1)
    assert shared.counters.claim("web", "c") == first
    shared.close()


def test_the_client_table_is_seen_by_both_workers_and_expires():
    shared = SharedState.create(2, 1024)
    table = shared.clients
    in_child(lambda: table.put("web", "198.18.0.10", 7, now=100.0))
    assert table.get("web", "198.18.0.10", now=101.0, expiry=60) == 7
    assert table.get("other", "198.18.0.10", now=101.0, expiry=60) is None  # per pool
    assert table.get("web", "198.18.0.10", now=200.0, expiry=60) is None  # expired
    assert table.count("web") == 0
    shared.close()


def test_a_full_bucket_forgets_its_least_recently_used_client():
    shared = SharedState.create(1, 4)  # one bucket of four
    table = shared.clients
    for i in range(4):
        table.put("web", f"c{i}", i, now=float(i))
    table.put("web", "c0", 0, now=10.0)  # c0 used again: c1 is now the oldest
    table.put("web", "c4", 4, now=11.0)
    assert [table.get("web", f"c{i}", 12.0, 0) for i in range(5)] == [0, None, 2, 3, 4]
    assert sorted(client for client, _, _ in table.items("web")) == ["c0", "c2", "c3", "c4"]
    shared.close()


def test_least_connection_follows_node_wide_counts():
    shared = SharedState.create(2, 1024)
    shared.bind_worker(0)
    config = Pool.model_validate({"scheduler": "lc", "servers": ["198.18.0.21:80", "198.18.0.22:80"]})
    mine = PoolRuntime("web", config, shared)
    # worker 1's view: the same mapping, its own row
    other_shared = copy.copy(shared)
    other_shared.counters = copy.copy(shared.counters)
    other_shared.counters.index, other_shared.counters._row = 1, shared.counters.slots * 4
    theirs = PoolRuntime("web", config, other_shared)
    first = theirs.pick(now=0.0)
    theirs.taken(first)
    second = mine.pick(now=0.0)
    assert second is not None and second.key != first.key  # one worker would not repeat it
    mine.taken(second)
    mine.sync_counters()
    assert sorted(b.active for b in mine.backends) == [1, 1]
    shared.close()


def test_node_totals_add_the_other_workers_snapshots():
    from types import SimpleNamespace

    from fulcrum.observe import Observation, Observer
    from fulcrum.shared.totals import PeerTotals, node_connections, node_observer, snapshot

    def worker(index: int, statuses: list[int]) -> SimpleNamespace:
        observer = Observer()
        for status in statuses:
            observer.record(Observation(kind="http", service="web", pool="p", server="s:80", status=status,
                                        bytes_in=10, bytes_out=100, **({"termination": "reset"} if status >= 500 else {})))
        contexts = {"web": SimpleNamespace(connections=SimpleNamespace(current=index + 1))}
        return SimpleNamespace(observer=observer, connections=index + 1, contexts=contexts,
                               shared=SimpleNamespace(index=index, peers=None))

    first, second = worker(0, [200, 200]), worker(1, [404, 502])
    first.shared.peers = PeerTotals({1: snapshot(second)})
    totals = node_observer(first).service_totals("web")
    assert (totals.requests, totals.bytes_out, totals.errors, totals.terminations) == (4, 400, 1, {"reset": 1})
    assert totals.statuses == [0, 2, 0, 1, 1, 0]
    assert node_observer(first).server_totals("p", "s:80").requests == 4
    assert node_connections(first) == 3
