"""lc: least connections (IPVS lc). The usable server with the fewest active
connections; ties go to the first in configuration order, as in IPVS.

Also home of `least_per_weight`, the "lowest load/weight" comparison shared by
wlc, sed, pen's weight, lblc, lblcr and bytraffic."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from fulcrum.balance.base import Backend, PickContext, Scheduler
from fulcrum.balance.registry import register


def least_per_weight(candidates: Iterable[Backend], load: Callable[[Backend], int]) -> Backend | None:
    """The candidate with the smallest load(b)/weight, the first one on ties.
    Compares by cross-multiplication (as IPVS does) so there is no rounding;
    weight 0 never wins."""
    best: Backend | None = None
    best_load = 0
    for backend in candidates:
        if backend.weight <= 0:
            continue
        current = load(backend)
        if best is None or best_load * backend.weight > current * best.weight:
            best, best_load = backend, current
    return best


class LeastConnection(Scheduler):
    name = "lc"

    def pick(self, query: PickContext) -> Backend | None:
        candidates = self.usable(query)
        return min(candidates, key=lambda b: b.active) if candidates else None


register(LeastConnection)  # not a decorator: mypyc compiles only undecorated classes
