"""byrequests: mod_proxy_balancer's weighted request counting
(mod_lbmethod_byrequests). Each pick adds every usable worker's lbfactor
(weight) to its lbstatus, chooses the highest lbstatus and subtracts the
total from it. That is exactly the smooth weighted round robin of `wrr`, so
this class only gives it Apache's name."""

from __future__ import annotations

from fulcrum.balance.registry import register
from fulcrum.balance.wrr import WeightedRoundRobin


class ByRequests(WeightedRoundRobin):
    name = "byrequests"


register(ByRequests)  # not a decorator: mypyc compiles only undecorated classes
