"""weight: pen -W, "least connections relative to weight": the usable server
with the lowest connections/weight (pen computes 256*c/weight in integers;
the cross-multiplied comparison here is the same order without rounding)."""

from __future__ import annotations

from fulcrum.balance.registry import register
from fulcrum.balance.wlc import WeightedLeastConnection


class PenWeight(WeightedLeastConnection):
    name = "weight"


register(PenWeight)  # not a decorator: mypyc compiles only undecorated classes
