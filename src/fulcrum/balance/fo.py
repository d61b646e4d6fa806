"""fo: weighted failover (IPVS fo). Every connection goes to the usable server
with the highest weight; ties go to the first in configuration order."""

from __future__ import annotations

from fulcrum.balance.base import Backend, PickContext, Scheduler
from fulcrum.balance.registry import register


class WeightedFailover(Scheduler):
    name = "fo"

    def pick(self, query: PickContext) -> Backend | None:
        candidates = self.usable(query)
        return max(candidates, key=lambda b: b.weight) if candidates else None


register(WeightedFailover)  # not a decorator: mypyc compiles only undecorated classes
