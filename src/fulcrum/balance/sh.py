"""sh: source hashing (IPVS sh), and the weighted hash table dh shares.

A table of `table_size` slots (IPVS: 256) is laid out once per set of weights:
each server holds slots in proportion to its weight, interleaved (smooth wrr
order, where IPVS writes `weight` consecutive slots per server, which skews
shares when weights are not small integers). A key hashes to one slot.

When the slot's server is not usable, the key is hashed again with an attempt
number, as IPVS's sh-fallback rehashes with an offset: only the clients of a
failed server move, and they spread over the other servers instead of all
landing on its table neighbour. After `table_size` attempts (only when nearly
everything is down) the table is walked in order, so a usable server is found
whenever one holds a slot.
Option `fallback = false` gives IPVS's default: no server (None) instead.

Servers with weight 0 hold no slot. Health does not change the table, so a
server coming back gets exactly its old clients back."""

from __future__ import annotations

from fulcrum.balance.base import Backend, PickContext, Scheduler
from fulcrum.balance.hashing import stable_hash
from fulcrum.balance.registry import register
from fulcrum.balance.wrr import smooth_sequence
from fulcrum.config.schedulers import option_int

DEFAULT_TABLE_SIZE = 256  # IPVS: CONFIG_IP_VS_SH_TAB_BITS = 8


class SourceHash(Scheduler):
    name = "sh"
    salt = "ipvs-sh"

    def rebuild(self) -> None:
        size = option_int(self.options, "table_size", DEFAULT_TABLE_SIZE)
        self.fallback = bool(self.options.get("fallback", True))
        weighted = [b for b in self.backends if b.weight > 0]
        signature = (size, [(b.key, b.weight) for b in weighted])
        if getattr(self, "_signature", None) == signature:
            return  # only health changed: the table stays as it is
        self._signature = signature
        order = smooth_sequence([b.weight for b in weighted], size) if weighted else []
        self.table: list[Backend] = [weighted[i] for i in order]

    def key(self, query: PickContext) -> str:
        return query.client or ""

    def pick(self, query: PickContext) -> Backend | None:
        size = len(self.table)
        if size == 0:
            return None
        key = self.key(query)
        backend = self.table[stable_hash(key, self.salt) % size]
        if self.eligible(backend, query):
            return backend
        if not self.fallback:
            return None
        for attempt in range(1, size):
            backend = self.table[stable_hash(f"{key}#{attempt}", self.salt) % size]
            if self.eligible(backend, query):
                return backend
        for backend in self.table:
            if self.eligible(backend, query):
                return backend
        return None


register(SourceHash)  # not a decorator: mypyc compiles only undecorated classes
