"""Hash schedulers: sh, dh, mh (Maglev) and pen's hash. Spread by weight,
fallback when a server is down, keys remapped when a server leaves, and the
same answers in every process (no reliance on Python's salted hash())."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
from balance_helpers import (
    HASHED,
    backends,
    client_keys,
    ctx,
    everyone,
    expected_shares,
    picked_key,
    scheduler,
    up_only,
)

from fulcrum.balance.base import Backend, Scheduler
from fulcrum.balance.maglev import Maglev, populate
from fulcrum.config.schedulers import DEFAULT_TABLE_SIZE, table_size_for

N = 10
CLIENTS = 100_000


def homes(sched: Scheduler, keys: list[str],
          usable: Callable[[Backend], bool] = everyone) -> dict[str, str]:
    result = {}
    for key in keys:
        chosen = sched.pick(ctx(usable, client=key))
        assert chosen is not None
        result[key] = chosen.key
    return result


def moved(before: dict[str, str], after: dict[str, str]) -> float:
    return sum(before[k] != after[k] for k in before) / len(before)


@pytest.fixture(scope="module")
def keys() -> list[str]:
    return client_keys(CLIENTS)


@pytest.mark.parametrize("name", HASHED)
def test_same_key_same_server(name: str) -> None:
    pool = backends([1] * 5)
    one, two = scheduler(name, pool), scheduler(name, backends([1] * 5))
    for key in client_keys(200):
        assert picked_key(one, ctx(client=key)) == picked_key(two, ctx(client=key))


@pytest.mark.parametrize("name", ["sh", "dh", "mh"])
def test_keys_spread_by_weight(name: str, keys: list[str]) -> None:
    pool = backends([1, 2, 3, 0])
    counts = Counter(homes(scheduler(name, pool), keys[:60_000]).values())
    assert counts[pool[3].key] == 0
    for backend, expected in zip(pool, expected_shares(pool), strict=True):
        assert abs(counts[backend.key] / 60_000 - expected) < 0.02


def test_pen_hash_is_address_modulo_servers_and_falls_through() -> None:
    pool = backends([1] * 4)
    sched = scheduler("hash", pool)
    counts = Counter(homes(sched, client_keys(8000)).values())
    assert all(abs(counts[b.key] - 2000) < 200 for b in pool)
    for key in client_keys(50):
        home = sched.pick(ctx(client=key))
        assert home is not None
        index = pool.index(home)
        # pen's failover_server: the next server in configuration order
        assert sched.pick(ctx(up_only([home]), client=key)) is pool[(index + 1) % 4]


def test_dh_hashes_the_key_not_the_client() -> None:
    pool = backends([1] * 8)
    sched = scheduler("dh", pool)
    chosen = {sched.pick(ctx(client=c, key="origin.example")) for c in client_keys(40)}
    assert len(chosen) == 1
    # no key: the client address is the key
    for client in client_keys(20):
        assert sched.pick(ctx(client=client)) is sched.pick(ctx(client="x", key=client))


@pytest.mark.parametrize("name", ["sh", "mh", "hash"])
def test_down_moves_only_that_servers_clients_and_back_restores(
        name: str, keys: list[str]) -> None:
    pool = backends([1] * N)
    sched = scheduler(name, pool)
    before = homes(sched, keys)
    gone = pool[3]
    sched.rebuild()  # health change
    during = homes(sched, keys, up_only([gone]))
    changed = {k for k in keys if before[k] != during[k]}
    assert changed == {k for k in keys if before[k] == gone.key}
    if name != "hash":  # pen's fall-through loads one neighbour; hashed fallbacks spread
        spread = Counter(during[k] for k in changed)
        assert len(spread) == N - 1
        assert max(spread.values()) < 3 * len(changed) / (N - 1)
    sched.rebuild()
    assert homes(sched, keys) == before
    print(f"\n{name}: one of {N} servers down: {len(changed) / len(keys):.4f} of "
          f"{len(keys)} clients moved (1/N = {1 / N:.4f})")


def test_sh_without_fallback_declines_like_ipvs() -> None:
    pool = backends([1] * 4)
    sched = scheduler("sh", pool, {"fallback": False})
    client = "198.18.0.77"
    home = sched.pick(ctx(client=client))
    assert home is not None
    assert sched.pick(ctx(up_only([home]), client=client)) is None


def leave(pool: list[Backend], index: int) -> list[Backend]:
    """The same servers, configured again without one (fresh runtime state)."""
    return [Backend(key=b.key, address=b.address, port=b.port, weight=b.weight)
            for i, b in enumerate(pool) if i != index]


def test_maglev_removal_moves_about_one_in_n(keys: list[str]) -> None:
    pool = backends([1] * N)
    before = homes(scheduler("mh", pool), keys)
    fractions = []
    for index in (0, 4, 9):
        after = homes(scheduler("mh", leave(pool, index)), keys)
        own = sum(before[k] == pool[index].key for k in keys) / len(keys)
        fraction = moved(before, after)
        fractions.append(fraction)
        print(f"\nmh: server {index} of {N} removed: {fraction:.4f} of {len(keys)} clients "
              f"remapped ({own:.4f} were its own; 1/N = {1 / N:.4f}, bound 2/N)")
        assert own <= fraction < 2 / N
    # sh for comparison: its table is laid out again and most keys move.
    sh_before = homes(scheduler("sh", pool), keys)
    sh_after = homes(scheduler("sh", leave(pool, 4)), keys)
    print(f"sh: server 4 of {N} removed: {moved(sh_before, sh_after):.4f} remapped "
          f"(modulo-style table; mh above is consistent)")
    assert moved(sh_before, sh_after) > max(fractions)


def test_maglev_addition_moves_about_one_in_n_plus_one(keys: list[str]) -> None:
    pool = backends([1] * (N + 1))
    before = homes(scheduler("mh", leave(pool, N)), keys)
    after = homes(scheduler("mh", pool), keys)
    fraction = moved(before, after)
    print(f"\nmh: server added to {N}: {fraction:.4f} remapped (1/(N+1) = {1 / (N + 1):.4f})")
    to_new = sum(after[k] == pool[N].key for k in keys) / len(keys)
    print(f"mh: of which {to_new:.4f} went to the new server, {fraction - to_new:.4f} "
          f"between old servers")
    assert fraction < 2 / (N + 1)
    assert fraction - to_new < to_new / 2  # most movement is onto the new server


def test_maglev_slots_even_and_weighted() -> None:
    names = [b.key for b in backends([1] * N)]
    even = Counter(populate(names, [1] * N, DEFAULT_TABLE_SIZE))
    assert max(even.values()) - min(even.values()) <= 1  # one slot per server per turn
    weighted = Counter(populate(names[:3], [10, 20, 30], 65521))
    for index, weight in enumerate([1, 2, 3]):
        assert abs(weighted[index] - 65521 * weight / 6) <= 3


def test_maglev_weight_zero_holds_no_slot_and_change_rebuilds() -> None:
    pool = backends([1, 1, 1])
    sched = scheduler("mh", pool)
    pool[1].weight = 0
    sched.rebuild()
    assert all(sched.pick(ctx(client=k)) is not pool[1] for k in client_keys(500))


def test_maglev_table_size_rules() -> None:
    assert table_size_for(10) == 65521 and table_size_for(700) == 131071
    assert table_size_for(10, 1021) == 1021
    sched = scheduler("mh", backends([1] * 3), {"table_size": 331})
    assert isinstance(sched, Maglev) and len(sched.table) == 331
    with pytest.raises(ValueError, match="not prime"):
        scheduler("mh", backends([1] * 3), {"table_size": 1000})
    with pytest.raises(ValueError, match="too small for 3 servers"):
        scheduler("mh", backends([1] * 3), {"table_size": 293})
    with pytest.raises(ValueError, match="not an integer"):
        scheduler("mh", backends([1] * 3), {"table_size": "big"})
