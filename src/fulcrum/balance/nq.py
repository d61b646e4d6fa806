"""nq: never queue (IPVS nq). An idle server (no active connections) if there
is one, the first in configuration order as in IPVS; otherwise the shortest
expected delay, (active + 1) / weight."""

from __future__ import annotations

from fulcrum.balance.base import Backend, PickContext, Scheduler
from fulcrum.balance.lc import least_per_weight
from fulcrum.balance.registry import register
from fulcrum.balance.sed import expected_delay


class NeverQueue(Scheduler):
    name = "nq"

    def pick(self, query: PickContext) -> Backend | None:
        candidates = self.usable(query)
        for backend in candidates:
            if backend.active == 0:
                return backend
        return least_per_weight(candidates, expected_delay)


register(NeverQueue)  # not a decorator: mypyc compiles only undecorated classes
