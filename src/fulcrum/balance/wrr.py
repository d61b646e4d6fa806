"""wrr: weighted round robin, smooth and deterministic.

IPVS wrr steps a current weight down by the gcd, which sends bursts to a
heavy server (weights 5:1 give a a a a a b). This is the smooth variant
(nginx's, and the same arithmetic as Apache's byrequests `lbstatus`): each
pick every candidate earns its weight in credit, the richest is chosen and
pays the total. Over any prefix of picks a server's count stays within one
of its exact share, so picks interleave instead of bunching."""

from __future__ import annotations

from collections.abc import Sequence

from fulcrum.balance.base import Backend, PickContext, Scheduler
from fulcrum.balance.registry import register


class Credits:
    """Running credit per backend (Apache's lbstatus, nginx's current_weight)."""

    def __init__(self) -> None:
        self._credit: dict[Backend, int] = {}

    def __getitem__(self, backend: Backend) -> int:
        return self._credit.get(backend, 0)

    def award(self, candidates: Sequence[Backend]) -> int:
        """Every candidate earns its weight; returns the total awarded."""
        total = 0
        for backend in candidates:
            self._credit[backend] = self[backend] + backend.weight
            total += backend.weight
        return total

    def charge(self, backend: Backend, total: int) -> None:
        self._credit[backend] = self[backend] - total

    def richest(self, candidates: Sequence[Backend]) -> Backend:
        """Award, choose the richest (first on ties) and charge it."""
        total = self.award(candidates)
        chosen = max(candidates, key=self.__getitem__)
        self.charge(chosen, total)
        return chosen


def smooth_sequence(weights: Sequence[int], length: int) -> list[int]:
    """Indexes of the first `length` smooth-wrr picks over `weights` (all > 0):
    used to lay out weighted hash tables with servers interleaved."""
    credit = [0] * len(weights)
    total = sum(weights)
    sequence = []
    for _ in range(length):
        for index, weight in enumerate(weights):
            credit[index] += weight
        chosen = max(range(len(weights)), key=credit.__getitem__)
        credit[chosen] -= total
        sequence.append(chosen)
    return sequence


class WeightedRoundRobin(Scheduler):
    name = "wrr"

    def rebuild(self) -> None:
        # Credits survive weight and health changes (as Apache's lbstatus does);
        # they stay bounded because each pick awards and charges the same total.
        if not hasattr(self, "credits"):
            self.credits = Credits()

    def pick(self, query: PickContext) -> Backend | None:
        candidates = self.usable(query)
        return self.credits.richest(candidates) if candidates else None


register(WeightedRoundRobin)  # not a decorator: mypyc compiles only undecorated classes
