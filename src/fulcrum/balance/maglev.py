"""mh: Maglev consistent hashing (Eisenbud et al., NSDI 2016, section 3.4; IPVS
ip_vs_mh). Every server has a permutation of the M table slots,
    offset = h1(name) mod M,  skip = h2(name) mod (M - 1) + 1,
    permutation[j] = (offset + j * skip) mod M,
and the servers take turns claiming their next unclaimed preferred slot until
the table is full. A key hashes to a slot. M is prime, so every permutation
visits every slot. Removing one of N servers moves about 1/N of the keys.

Weights: as in IPVS, a server claims weight/gcd(weights) slots per turn, so it
ends up owning slots in proportion to its weight. Weight 0 claims none.

Unusable server: the table is not rebuilt for health (a server that comes back
gets its keys back); the lookup walks on from the slot to the next slot whose
server is usable, deterministically, so only the failed server's keys move.

Option `table_size` sets M: a prime, more than 100 x the servers (the paper's
advice to keep each server's share even), at most 1048573 (IPVS's largest). Default: IPVS's 65521, or the next
prime of the ladder below when there are more than 655 servers."""

from __future__ import annotations

from math import gcd

from fulcrum.balance.base import Backend, PickContext, Scheduler
from fulcrum.balance.hashing import stable_hash
from fulcrum.balance.registry import register
from fulcrum.config.schedulers import table_size_for


def populate(names: list[str], weights: list[int], size: int) -> list[int]:
    """The lookup table: slot -> index into `names` (Maglev paper, Pseudocode 1)."""
    offsets = [stable_hash(name, "maglev-offset") % size for name in names]
    skips = [stable_hash(name, "maglev-skip") % (size - 1) + 1 for name in names]
    divisor = gcd(*weights)
    turns = [weight // divisor for weight in weights]
    position = offsets[:]  # each server's next preferred slot
    table = [-1] * size
    filled = 0
    while True:
        for index, skip in enumerate(skips):
            for _ in range(turns[index]):
                slot = position[index]
                while table[slot] >= 0:
                    slot = (slot + skip) % size
                table[slot] = index
                position[index] = (slot + skip) % size
                filled += 1
                if filled == size:
                    return table


class Maglev(Scheduler):
    name = "mh"

    def rebuild(self) -> None:
        weighted = [b for b in self.backends if b.weight > 0]
        size = table_size_for(len(self.backends), self.options.get("table_size"))
        signature = (size, [(b.key, b.weight) for b in weighted])
        if getattr(self, "_signature", None) == signature:
            return  # only health changed: keep the table (and the keys' homes)
        self._signature = signature
        self.table: list[Backend] = []
        self.servers_in_table = len(weighted)
        if weighted:
            slots = populate([b.key for b in weighted], [b.weight for b in weighted], size)
            self.table = [weighted[index] for index in slots]

    def pick(self, query: PickContext) -> Backend | None:
        size = len(self.table)
        if size == 0:
            return None
        start = stable_hash(query.hash_key, "maglev-key") % size
        owner = self.table[start]
        if self.eligible(owner, query):
            return owner
        # Walk on through the table; each distinct server is asked once.
        asked = {owner}
        for step in range(1, size):
            backend = self.table[(start + step) % size]
            if backend not in asked:
                if self.eligible(backend, query):
                    return backend
                asked.add(backend)
                if len(asked) == self.servers_in_table:
                    break
        return None


register(Maglev)  # not a decorator: mypyc compiles only undecorated classes
