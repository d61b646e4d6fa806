"""sed: shortest expected delay (IPVS sed): the usable server with the lowest
(active + 1) / weight, i.e. the expected delay if this connection joins it.
Unlike wlc it prefers a heavier idle server over a lighter idle one."""

from __future__ import annotations

from fulcrum.balance.base import Backend, PickContext, Scheduler
from fulcrum.balance.lc import least_per_weight
from fulcrum.balance.registry import register


def expected_delay(backend: Backend) -> int:
    return backend.active + 1


class ShortestExpectedDelay(Scheduler):
    name = "sed"

    def pick(self, query: PickContext) -> Backend | None:
        return least_per_weight(self.usable(query), expected_delay)


register(ShortestExpectedDelay)  # not a decorator: mypyc compiles only undecorated classes
