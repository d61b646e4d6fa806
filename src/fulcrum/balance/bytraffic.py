"""bytraffic: mod_proxy_balancer's weighted traffic counting
(mod_lbmethod_bytraffic). The usable worker with the fewest bytes relayed
(both directions, Backend.traffic) per unit of weight (lbfactor); ties go to
the first in configuration order."""

from __future__ import annotations

from fulcrum.balance.base import Backend, PickContext, Scheduler
from fulcrum.balance.lc import least_per_weight
from fulcrum.balance.registry import register


class ByTraffic(Scheduler):
    name = "bytraffic"

    def pick(self, query: PickContext) -> Backend | None:
        return least_per_weight(self.usable(query), lambda b: b.traffic)


register(ByTraffic)  # not a decorator: mypyc compiles only undecorated classes
