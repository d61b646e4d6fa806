"""Shared helpers for the scheduler tests: backends, contexts and load loops."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable

from fulcrum.balance.base import Backend, Options, PickContext, Scheduler
from fulcrum.balance.registry import make_scheduler

HASHED = ["sh", "dh", "mh", "hash"]  # the schedulers that pick by hashing a key


def backends(weights: Iterable[int]) -> list[Backend]:
    return [Backend(key=f"10.0.0.{i + 1}:80", address=f"10.0.0.{i + 1}", port=80, weight=weight)
            for i, weight in enumerate(weights)]


def set_active(pool: list[Backend], *active: int) -> None:
    for backend, count in zip(pool, active, strict=True):
        backend.active = count


def picked_key(sched: Scheduler, context: PickContext) -> str:
    chosen = sched.pick(context)
    assert chosen is not None
    return chosen.key


def scheduler(name: str, pool: list[Backend], options: Options | None = None) -> Scheduler:
    return make_scheduler(name, pool, options)


def everyone(_: Backend) -> bool:
    return True


def up_only(down: Iterable[Backend]) -> Callable[[Backend], bool]:
    """A usability predicate in which the `down` backends are unusable."""
    gone = {id(b) for b in down}
    return lambda b: id(b) not in gone


def ctx(usable: Callable[[Backend], bool] = everyone, now: float = 0.0,
        client: str | None = None, key: str | None = None) -> PickContext:
    return PickContext(usable=usable, now=now, client=client, key=key)


def pick_counts(sched: Scheduler, picks: int, context: PickContext | None = None) -> Counter[str]:
    """Pick `picks` times without connections changing; count per server key."""
    context = context or ctx()
    counts: Counter[str] = Counter()
    for _ in range(picks):
        chosen = sched.pick(context)
        assert chosen is not None
        counts[chosen.key] += 1
    return counts


def closed_loop(sched: Scheduler, picks: int, in_flight: int,
                context: PickContext | None = None) -> Counter[str]:
    """Keep `in_flight` connections open: each new pick is taken, and once the
    window is full the oldest connection ends first. Counts picks per server."""
    context = context or ctx()
    open_connections: deque[Backend] = deque()
    counts: Counter[str] = Counter()
    for _ in range(picks):
        if len(open_connections) >= in_flight:
            done = open_connections.popleft()
            done.active -= 1
            sched.released(done)
        chosen = sched.pick(context)
        assert chosen is not None
        chosen.active += 1
        chosen.total += 1
        sched.taken(chosen)
        open_connections.append(chosen)
        counts[chosen.key] += 1
    return counts


def shares(counts: Counter[str], pool: list[Backend]) -> list[float]:
    total = sum(counts.values())
    return [counts[b.key] / total for b in pool]


def expected_shares(pool: list[Backend]) -> list[float]:
    total = sum(b.weight for b in pool)
    return [b.weight / total for b in pool]


def client_keys(count: int) -> list[str]:
    """`count` distinct IPv4 client addresses from 198.18.0.0/15 (documentation use)."""
    return [f"198.{18 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}" for i in range(count)]
