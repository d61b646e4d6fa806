"""random: weighted random choice (nftables `numgen random`, nftlb's `weight`
scheduler). A server is drawn with probability weight / sum of usable weights.

Option `seed` (int) seeds the generator so tests and replays are repeatable."""

from __future__ import annotations

import random as _random

from fulcrum.balance.base import Backend, PickContext, Scheduler
from fulcrum.balance.registry import register


class WeightedRandom(Scheduler):
    name = "random"

    def rebuild(self) -> None:
        if not hasattr(self, "_random"):
            seed = self.options.get("seed")
            self._random = _random.Random(seed if isinstance(seed, int) else None)

    def pick(self, query: PickContext) -> Backend | None:
        candidates = self.usable(query)
        if not candidates:
            return None
        return self._random.choices(candidates, weights=[b.weight for b in candidates])[0]


register(WeightedRandom)  # not a decorator: mypyc compiles only undecorated classes
