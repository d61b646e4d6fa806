"""hash: pen -h. The client address, hashed, modulo the number of configured
servers picks the server; if that one is not usable pen falls through to the
next server in order (pen's failover_server), and so does this.

pen sums the address bytes; a stable 64-bit hash spreads clients from one
subnet better and is still the same on every node."""

from __future__ import annotations

from fulcrum.balance.base import Backend, PickContext, Scheduler
from fulcrum.balance.hashing import stable_hash
from fulcrum.balance.registry import register


class PenHash(Scheduler):
    name = "hash"

    def pick(self, query: PickContext) -> Backend | None:
        count = len(self.backends)
        if count == 0:
            return None
        start = stable_hash(query.client or "", "pen-hash") % count
        for step in range(count):
            backend = self.backends[(start + step) % count]
            if self.eligible(backend, query):
                return backend
        return None


register(PenHash)  # not a decorator: mypyc compiles only undecorated classes
