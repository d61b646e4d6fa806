"""wlc: weighted least connections (IPVS wlc): the usable server with the lowest
active/weight. IPVS counts overhead = active*256 + inactive; a proxy has no
inactive (TIME_WAIT) connections, so the overhead is `active`."""

from __future__ import annotations

from fulcrum.balance.base import Backend, PickContext, Scheduler
from fulcrum.balance.lc import least_per_weight
from fulcrum.balance.registry import register


class WeightedLeastConnection(Scheduler):
    name = "wlc"

    def pick(self, query: PickContext) -> Backend | None:
        return least_per_weight(self.usable(query), lambda b: b.active)


register(WeightedLeastConnection)  # not a decorator: mypyc compiles only undecorated classes
