"""ovf: overflow (IPVS ovf). Connections go to the usable server with the highest
weight until its active connections exceed its weight, then overflow to the
next highest. The weight is a connection capacity here.

As in ip_vs_ovf.c a server is skipped only when active > weight, so it takes
connections while active <= weight. When every server is past its weight
there is no choice (None), as IPVS reports "no destination available"."""

from __future__ import annotations

from fulcrum.balance.base import Backend, PickContext, Scheduler
from fulcrum.balance.registry import register


class Overflow(Scheduler):
    name = "ovf"

    def pick(self, query: PickContext) -> Backend | None:
        open_servers = [b for b in self.usable(query) if b.active <= b.weight]
        return max(open_servers, key=lambda b: b.weight) if open_servers else None


register(Overflow)  # not a decorator: mypyc compiles only undecorated classes
