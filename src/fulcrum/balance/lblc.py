"""lblc: locality-based least connection (IPVS lblc), keyed by query.hash_key
(the destination, e.g. a cache's origin host, or the client).

A key keeps the server it was given while that server is usable and not
overloaded; otherwise it gets the usable server with the lowest active/weight
(wlc) and keeps that one. "Overloaded" is IPVS's: more active connections
than its weight while some other server is below half its weight.

The key table is bounded (option `table_size`, IPVS: 16384) and forgets keys
unused for `expiry` seconds (IPVS lblc_expiration: 24 h), least recently used
first; time is query.now."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Generic, TypeVar

from fulcrum.balance.base import Backend, Options, PickContext, Scheduler
from fulcrum.balance.lc import least_per_weight
from fulcrum.balance.registry import register
from fulcrum.config.schedulers import option_number

DEFAULT_TABLE_SIZE = 16384
DEFAULT_EXPIRY = 24 * 60 * 60.0

Entry = TypeVar("Entry")


class LocalityTable(Generic[Entry]):
    """key -> entry, least recently used first; bounded in size and age."""

    def __init__(self, size: int, expiry: float):
        self.size = size
        self.expiry = expiry
        self._entries: OrderedDict[str, tuple[Entry, float]] = OrderedDict()

    def get(self, key: str, now: float) -> Entry | None:
        found = self._entries.get(key)
        if found is None:
            return None
        if now - found[1] > self.expiry:
            del self._entries[key]
            return None
        return found[0]

    def put(self, key: str, entry: Entry, now: float) -> None:
        """Store (or touch) `key`, then drop expired and over-size entries."""
        self._entries[key] = (entry, now)
        self._entries.move_to_end(key)
        while self._entries:
            oldest_key, (_, used) = next(iter(self._entries.items()))
            if len(self._entries) <= self.size and now - used <= self.expiry:
                break
            del self._entries[oldest_key]

    def __len__(self) -> int:
        return len(self._entries)


def configured_table(options: Options, table: LocalityTable[Entry] | None) -> LocalityTable[Entry]:
    """`table` (a new one if None) sized and aged by the options `table_size`
    and `expiry`; entries survive a rebuild."""
    size = int(option_number(options, "table_size", DEFAULT_TABLE_SIZE))
    expiry = option_number(options, "expiry", DEFAULT_EXPIRY)
    if table is None:
        return LocalityTable(size, expiry)
    table.size, table.expiry = size, expiry
    return table


def overloaded(backend: Backend, candidates: Sequence[Backend]) -> bool:
    """IPVS is_overloaded(): busier than its weight while another server is
    below half of its own."""
    return backend.active > backend.weight and any(2 * b.active < b.weight for b in candidates)


def least_connection(candidates: Sequence[Backend]) -> Backend | None:
    return least_per_weight(candidates, lambda b: b.active)


class LocalityBasedLeastConnection(Scheduler):
    name = "lblc"

    def rebuild(self) -> None:
        kept = getattr(self, "table", None)
        self.table: LocalityTable[Backend] = configured_table(self.options, kept)

    def pick(self, query: PickContext) -> Backend | None:
        candidates = self.usable(query)
        if not candidates:
            return None
        key = query.hash_key
        chosen = self.table.get(key, query.now)
        if chosen is None or not self.eligible(chosen, query) or overloaded(chosen, candidates):
            chosen = least_connection(candidates)
            if chosen is None:  # unreachable: candidates are usable, so weight > 0
                return None
        self.table.put(key, chosen, query.now)
        return chosen


register(LocalityBasedLeastConnection)  # not a decorator: mypyc compiles only undecorated classes
