"""random2: the power of two random choices. Draw two distinct usable servers
at random (in proportion to weight, as HAProxy's random(2) does) and take the
one with the lower active/weight; the first drawn on a tie.

Not deterministic across nodes by nature. Option `seed` (int) seeds the
generator so tests and replays are repeatable."""

from __future__ import annotations

import random

from fulcrum.balance.base import Backend, PickContext, Scheduler
from fulcrum.balance.lc import least_per_weight
from fulcrum.balance.registry import register


class PowerOfTwoChoices(Scheduler):
    name = "random2"

    def rebuild(self) -> None:
        if not hasattr(self, "random"):
            seed = self.options.get("seed")
            self.random = random.Random(seed if isinstance(seed, int) else None)

    def pick(self, query: PickContext) -> Backend | None:
        candidates = self.usable(query)
        if len(candidates) <= 1:
            return candidates[0] if candidates else None
        weights = [b.weight for b in candidates]
        first = self.random.choices(range(len(candidates)), weights)[0]
        weights[first] = 0  # the second draw is a different server
        second = self.random.choices(range(len(candidates)), weights)[0]
        return least_per_weight((candidates[first], candidates[second]), lambda b: b.active)


register(PowerOfTwoChoices)  # not a decorator: mypyc compiles only undecorated classes
