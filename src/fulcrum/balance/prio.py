"""prio: pen's priority scheduling. The usable server with the lowest
`priority`; among equals the one with the fewest active connections, then
configuration order. (pen itself takes the first of equal priority; breaking
the tie by connections spreads load across a tier of equal servers.)"""

from __future__ import annotations

from fulcrum.balance.base import Backend, PickContext, Scheduler
from fulcrum.balance.registry import register


class Priority(Scheduler):
    name = "prio"

    def pick(self, query: PickContext) -> Backend | None:
        candidates = self.usable(query)
        return min(candidates, key=lambda b: (b.priority, b.active)) if candidates else None


register(Priority)  # not a decorator: mypyc compiles only undecorated classes
