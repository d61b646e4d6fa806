"""lblcr: locality-based least connection with replication (IPVS lblcr).

Like lblc, but a key maps to a *set* of servers. A pick takes the set's usable
member with the lowest active/weight; if there is none, or it is overloaded
(see lblc), the least loaded usable server of the pool joins the set and is
chosen. When the set has more than one member and has not changed for
`set_expiry` seconds (IPVS lblcr_expiration: 24 h), its busiest member is
dropped, one per period, so a hot key's set shrinks back once load falls.

Keys unused for `expiry` seconds are forgotten; at most `table_size` keys are
kept (least recently used dropped first)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fulcrum.balance.base import Backend, PickContext, Scheduler
from fulcrum.balance.lblc import (
    DEFAULT_EXPIRY,
    LocalityTable,
    configured_table,
    least_connection,
    overloaded,
)
from fulcrum.balance.registry import register
from fulcrum.config.schedulers import option_number


@dataclass
class ServerSet:
    members: list[Backend] = field(default_factory=list)
    modified: float = 0.0


def busiest(members: list[Backend]) -> Backend:
    """Highest active/weight (IPVS ip_vs_dest_set_max); weight 0 counts as busiest."""
    def load(backend: Backend) -> float:
        return backend.active / backend.weight if backend.weight > 0 else float("inf")
    return max(members, key=load)


class LocalityBasedLeastConnectionReplicated(Scheduler):
    name = "lblcr"

    def rebuild(self) -> None:
        self.set_expiry = option_number(self.options, "set_expiry", DEFAULT_EXPIRY)
        kept = getattr(self, "table", None)
        self.table: LocalityTable[ServerSet] = configured_table(self.options, kept)

    def pick(self, query: PickContext) -> Backend | None:
        candidates = self.usable(query)
        if not candidates:
            return None
        key = query.hash_key
        servers = self.table.get(key, query.now) or ServerSet(modified=query.now)
        if len(servers.members) > 1 and query.now - servers.modified > self.set_expiry:
            servers.members.remove(busiest(servers.members))
            servers.modified = query.now
        chosen = least_connection([b for b in servers.members if self.eligible(b, query)])
        if chosen is None or overloaded(chosen, candidates):
            chosen = least_connection(candidates)
            if chosen is None:  # unreachable: candidates are usable, so weight > 0
                return None
            if chosen not in servers.members:
                servers.members.append(chosen)
                servers.modified = query.now
        self.table.put(key, servers, query.now)
        return chosen


register(LocalityBasedLeastConnectionReplicated)  # not a decorator: mypyc compiles only undecorated classes
