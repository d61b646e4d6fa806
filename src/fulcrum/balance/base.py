"""The scheduler protocol and the runtime state of one server (a Backend).

A scheduler sees every backend of its pool in a stable order (so hash tables
stay stable when servers come and go) and a `PickContext` whose `usable`
predicate says which backends may take this connection right now; the pool
decides usability (health, admin state, limits, tiers), the scheduler only
chooses among the usable ones."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

Options = Mapping[str, int | float | str | bool]


@dataclass(eq=False)
class Backend:
    """Runtime view of one configured server. Identity is the object; `key` is host:port."""

    key: str
    address: str
    port: int
    weight: int = 1
    max_connections: int = 0
    hard_limit: int = 0
    priority: int = 0
    backup: bool = False
    lbset: int = 0
    route: str | None = None
    state: str = "enabled"  # enabled | drain | disabled
    healthy: bool = True
    blacklisted_until: float = 0.0
    active: int = 0  # connections open now
    total: int = 0  # connections (or requests) ever sent
    traffic: int = 0  # bytes relayed, both directions
    failures: int = 0  # failed connects
    slot: int = -1  # its counters in shared memory with workers > 1 (fulcrum/shared/counters.py)


class PickContext:
    """Built once per pick: a plain slotted class, not a dataclass, so that mypyc (`make
    compiled`) compiles its __init__ too (a dataclass's is generated at import, interpreted)."""

    __slots__ = ("usable", "now", "client", "key")

    def __init__(self, usable: Callable[[Backend], bool], now: float = 0.0, client: str | None = None,
                 key: str | None = None):
        self.usable = usable
        self.now = now
        self.client = client  # client address: source hashing, client tables
        self.key = key  # other hash key (destination, Host); falls back to client

    def __repr__(self) -> str:
        return f"PickContext(now={self.now!r}, client={self.client!r}, key={self.key!r})"

    @property
    def hash_key(self) -> str:
        return self.key if self.key is not None else (self.client or "")


class Scheduler:
    """Base class of every algorithm. Subclasses set `name` and implement `pick`."""

    name: ClassVar[str] = ""

    def __init__(self, backends: Sequence[Backend], options: Options | None = None):
        self.backends = list(backends)
        self.options = dict(options or {})
        self.rebuild()

    def pick(self, query: PickContext) -> Backend | None:
        raise NotImplementedError

    def rebuild(self) -> None:
        """Weights, membership or health changed: recompute any derived tables."""

    def taken(self, backend: Backend) -> None:
        """A connection/request was sent to `backend` (counters are already updated)."""

    def released(self, backend: Backend) -> None:
        """A connection to `backend` ended."""

    @staticmethod
    def eligible(backend: Backend, query: PickContext) -> bool:
        """Usable for this pick and not quiesced: weight 0 is never chosen, even
        when a caller's `usable` predicate lets it through (as IPVS does)."""
        return backend.weight > 0 and query.usable(backend)

    def usable(self, query: PickContext) -> list[Backend]:
        return [b for b in self.backends if self.eligible(b, query)]
