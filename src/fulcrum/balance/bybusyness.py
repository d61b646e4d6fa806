"""bybusyness: mod_proxy_balancer's pending request counting
(mod_lbmethod_bybusyness). The usable worker with the fewest requests in
flight (`active`); ties go to the highest byrequests-style lbstatus, which
every pick advances by each candidate's weight, so idle servers share
requests in proportion to their weights."""

from __future__ import annotations

from fulcrum.balance.base import Backend, PickContext, Scheduler
from fulcrum.balance.registry import register
from fulcrum.balance.wrr import Credits


class ByBusyness(Scheduler):
    name = "bybusyness"

    def rebuild(self) -> None:
        if not hasattr(self, "credits"):
            self.credits = Credits()

    def pick(self, query: PickContext) -> Backend | None:
        candidates = self.usable(query)
        if not candidates:
            return None
        total = self.credits.award(candidates)
        chosen = min(candidates, key=lambda b: (b.active, -self.credits[b]))
        self.credits.charge(chosen, total)
        return chosen


register(ByBusyness)  # not a decorator: mypyc compiles only undecorated classes
