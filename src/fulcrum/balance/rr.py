"""rr: round robin (IPVS rr, pen -r). Skips backends that are not usable or have weight 0."""

from __future__ import annotations

from fulcrum.balance.base import Backend, PickContext, Scheduler
from fulcrum.balance.registry import register


class RoundRobin(Scheduler):
    name = "rr"

    def rebuild(self) -> None:
        self._next = getattr(self, "_next", 0) % max(len(self.backends), 1)

    def pick(self, query: PickContext) -> Backend | None:
        count = len(self.backends)
        for step in range(count):
            backend = self.backends[(self._next + step) % count]
            if self.eligible(backend, query):
                self._next = (self._next + step + 1) % count
                return backend
        return None


register(RoundRobin)  # not a decorator: mypyc compiles only undecorated classes
