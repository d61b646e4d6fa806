"""PoolRuntime with real schedulers: tiers (lbset, backup), soft and hard
limits, drain, blacklist, the emergency server and the client table."""

from __future__ import annotations

from typing import Any

import pytest

from fulcrum.balance.base import Backend
from fulcrum.balance.pool import PoolRuntime
from fulcrum.config.model import Pool
from fulcrum.config.schedulers import SCHEDULERS


def runtime(servers: list[Any], scheduler: str = "rr", **pool: Any) -> PoolRuntime:
    config = Pool.model_validate(
        {"scheduler": scheduler, "servers": servers, "options": {"seed": 1}, **pool})
    return PoolRuntime("web", config)


def keys(backends: list[Backend | None]) -> set[str | None]:
    return {b.key if b else None for b in backends}


def picks(pool: PoolRuntime, count: int, now: float = 0.0, **kw: Any) -> set[str | None]:
    return keys([pool.pick(now, **kw) for _ in range(count)])


def named(pool: PoolRuntime, key: str) -> Backend:
    backend = pool.find(key)
    assert backend is not None
    return backend


@pytest.mark.parametrize("scheduler", sorted(SCHEDULERS))
def test_backup_only_when_no_primary_is_usable(scheduler: str) -> None:
    pool = runtime(["10.0.0.1:80", "10.0.0.2:80", {"address": "10.0.0.9", "port": 80,
                                                   "backup": True}], scheduler)
    primary = {"10.0.0.1:80", "10.0.0.2:80"}
    assert picks(pool, 20, client="198.18.0.1") <= primary
    pool.set_healthy(named(pool, "10.0.0.1:80"), False)
    assert picks(pool, 20, client="198.18.0.1") == {"10.0.0.2:80"}
    pool.set_healthy(named(pool, "10.0.0.2:80"), False)
    assert picks(pool, 20, client="198.18.0.1") == {"10.0.0.9:80"}
    pool.set_healthy(named(pool, "10.0.0.2:80"), True)
    assert picks(pool, 20, client="198.18.0.1") == {"10.0.0.2:80"}


def test_lbset_tiers_in_order_primaries_before_backups() -> None:
    pool = runtime([
        {"address": "10.0.0.1", "port": 80, "lbset": 0},
        {"address": "10.0.0.2", "port": 80, "lbset": 1},
        {"address": "10.0.0.3", "port": 80, "lbset": 1},
        {"address": "10.0.0.8", "port": 80, "backup": True, "lbset": 0},
        {"address": "10.0.0.9", "port": 80, "backup": True, "lbset": 1},
    ], "wrr")
    order = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.8:80", "10.0.0.9:80"]
    assert picks(pool, 10) == {order[0]}
    pool.set_healthy(named(pool, order[0]), False)
    assert picks(pool, 10) == {order[1], order[2]}  # lbset 1 shared by its scheduler
    for key in order[1:3]:
        pool.set_healthy(named(pool, key), False)
    assert picks(pool, 10) == {order[3]}  # backups, lowest lbset first
    pool.set_healthy(named(pool, order[3]), False)
    assert picks(pool, 10) == {order[4]}
    pool.set_healthy(named(pool, order[2]), True)
    assert picks(pool, 10) == {order[2]}


def test_soft_limit_stops_new_clients_hard_limit_stops_sticky_ones() -> None:
    pool = runtime(["10.0.0.1:80:2:3", "10.0.0.2:80:0:0:1:1"], "prio",  # pen syntax
                   sticky={"mode": "source"})
    first = named(pool, "10.0.0.1:80")
    for client in ("198.18.0.1", "198.18.0.2"):
        chosen = pool.pick(0.0, client=client)
        assert chosen is first
        pool.taken(chosen)
    # at the soft limit (2): a new client goes elsewhere
    assert pool.pick(0.0, client="198.18.0.3") is named(pool, "10.0.0.2:80")
    # a remembered client may go on to the hard limit (3)
    again = pool.pick(1.0, client="198.18.0.1")
    assert again is first
    pool.taken(first)
    assert pool.pick(2.0, client="198.18.0.2") is named(pool, "10.0.0.2:80")
    pool.released(first)
    pool.released(first)
    assert pool.pick(3.0, client="198.18.0.9") is first  # below the soft limit again


def test_drain_keeps_sticky_clients_only() -> None:
    pool = runtime(["10.0.0.1:80", "10.0.0.2:80"], "rr", sticky={"mode": "source"})
    first = pool.pick(0.0, client="198.18.0.1")
    assert first is not None
    first.state = "drain"
    assert pool.pick(1.0, client="198.18.0.1") is first
    assert picks(pool, 10, 2.0, client="198.18.0.2") == {"10.0.0.2:80"}


def test_emergency_server_only_when_nothing_else_and_not_remembered() -> None:
    pool = runtime(["10.0.0.1:80", {"address": "10.0.0.8", "port": 80, "backup": True}], "wlc",
                   emergency="10.0.0.99:80", sticky={"mode": "source"})
    assert picks(pool, 5, client="198.18.0.1") == {"10.0.0.1:80"}
    for backend in list(pool.backends):
        pool.set_healthy(backend, False)
    chosen = pool.pick(1.0, client="198.18.0.1")
    assert chosen is pool.emergency and chosen is not None and chosen.key == "10.0.0.99:80"
    pool.taken(chosen)  # counted, without reaching the scheduler
    assert chosen.active == 1
    pool.set_healthy(named(pool, "10.0.0.8:80"), True)
    assert pool.pick(2.0, client="198.18.0.1") is named(pool, "10.0.0.8:80")
    chosen.healthy = False  # the emergency server fails too
    pool.set_healthy(named(pool, "10.0.0.8:80"), False)
    assert pool.pick(3.0, client="198.18.0.1") is None


def test_blacklisted_server_is_skipped_until_the_time_passes() -> None:
    pool = runtime(["10.0.0.1:80", "10.0.0.2:80"], "mh", blacklist="30s")
    client = "198.18.0.44"
    home = pool.pick(0.0, client=client)
    assert home is not None
    pool.connect_failed(home, now=100.0)
    other = pool.pick(110.0, client=client)
    assert other is not None and other is not home
    assert pool.pick(131.0, client=client) is home


def test_client_table_sticks_then_expires() -> None:
    pool = runtime(["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"], "rr",
                   sticky={"mode": "source", "expiry": "60s"})
    home = pool.pick(0.0, client="198.18.0.1")
    assert home is not None
    # rr alone would rotate; the client table keeps this client on its server
    assert picks(pool, 5, 30.0, client="198.18.0.1") == {home.key}
    # each visit renews the entry; 61 s of silence forgets it
    assert pool.pick(89.0, client="198.18.0.1") is home
    assert pool.pick(150.5, client="198.18.0.1") is not home
    # other clients still rotate
    assert len(keys([pool.pick(200.0, client=f"198.18.1.{i}") for i in range(3)])) == 3


def test_client_table_is_bounded_and_remembered_server_must_be_usable() -> None:
    pool = runtime(["10.0.0.1:80", "10.0.0.2:80"], "rr",
                   sticky={"mode": "source", "table_size": 4})
    homes = {f"198.18.0.{i}": pool.pick(0.0, client=f"198.18.0.{i}") for i in range(10)}
    assert pool.clients is not None and len(pool.clients) == 4
    client, home = "198.18.0.9", homes["198.18.0.9"]
    assert home is not None
    pool.set_healthy(home, False)
    moved = pool.pick(1.0, client=client)
    assert moved is not None and moved is not home
    pool.set_healthy(home, True)
    assert pool.pick(2.0, client=client) is moved  # the table now remembers the new server


def test_weight_zero_quiesces_new_clients() -> None:
    pool = runtime(["10.0.0.1:80", "10.0.0.2:80"], "mh")
    first = named(pool, "10.0.0.1:80")
    pool.set_weight(first, 0)
    assert picks(pool, 1, client="198.18.0.1") == {"10.0.0.2:80"}
    assert {pool.pick(0.0, client=f"198.18.3.{i}") for i in range(50)} == {
        named(pool, "10.0.0.2:80")}


def test_reload_keeps_live_counts() -> None:
    pool = runtime(["10.0.0.1:80", "10.0.0.2:80"], "lc")
    kept = named(pool, "10.0.0.1:80")
    pool.taken(kept)
    pool.apply(Pool.model_validate({"scheduler": "lc", "servers": ["10.0.0.1:80", "10.0.0.3:80"]}))
    assert named(pool, "10.0.0.1:80") is kept and kept.active == 1
    assert pool.pick(0.0) is named(pool, "10.0.0.3:80")
