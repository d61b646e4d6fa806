"""Which server each bucket of a kernel service's bucket map sends new flows to. Pure.

The kernel picks a bucket per new flow (`numgen inc` for rr and wrr, `numgen random`
for random, `jhash` of the client address for sh and mh) and the bucket map names
the server. The rule's modulus never changes, so every later change - a server down,
drained, weighted, a backup tier taking over - is an update of map elements only.

Which servers take new flows follows the pool's rules (balance/pool.py): the lowest
tier (primaries by lbset, then backups by lbset) with a usable server; the emergency
server when none is usable. Usable for new flows = healthy, enabled, weight > 0.
A draining server takes no new flow but keeps its established ones; a server that
is down or disabled loses those too (`keeps_flows`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fulcrum.balance.maglev import populate
from fulcrum.balance.wrr import smooth_sequence  # the user-space wrr's: both lay out alike
from fulcrum.config.schedulers import table_size_for


@dataclass(frozen=True)
class ServerState:
    """A snapshot of one server as the kernel plane needs it."""

    index: int  # position in the pool's server list; -1 = the emergency server
    key: str
    address: str
    port: int
    weight: int
    healthy: bool = True
    state: str = "enabled"  # enabled | drain | disabled
    backup: bool = False
    lbset: int = 0

    @property
    def takes_new(self) -> bool:
        return self.healthy and self.state == "enabled" and self.weight > 0

    @property
    def keeps_flows(self) -> bool:
        return self.healthy and self.state != "disabled"


def choosable(servers: Sequence[ServerState], emergency: ServerState | None) -> list[ServerState]:
    """The servers that take new flows now (tier rules and the emergency server)."""
    tiers: dict[tuple[bool, int], list[ServerState]] = {}
    for server in servers:
        tiers.setdefault((server.backup, server.lbset), []).append(server)
    for tier in sorted(tiers):
        usable = [s for s in tiers[tier] if s.takes_new]
        if usable:
            return usable
    if emergency is not None and emergency.healthy:
        return [emergency]
    return []


def tier_of(servers: Sequence[ServerState], chosen: Sequence[ServerState]) -> list[ServerState]:
    """Every server (usable or not, weight > 0) of the tier `chosen` belongs to."""
    if not chosen or chosen[0].index < 0:
        return list(chosen)
    tier = (chosen[0].backup, chosen[0].lbset)
    return [s for s in servers if (s.backup, s.lbset) == tier and s.weight > 0]


def bucket_size(scheduler: str, pool_servers: int, buckets: int, options: Mapping[str, object]) -> int:
    """The modulus of the service's rule: the Maglev table size for mh, else `buckets`."""
    if scheduler == "mh":
        return table_size_for(pool_servers, options.get("table_size"))
    return buckets


def assign(scheduler: str, servers: Sequence[ServerState], emergency: ServerState | None,
           size: int) -> list[ServerState | None]:
    """The server of each of `size` buckets (None: no server takes new flows)."""
    chosen = choosable(servers, emergency)
    if not chosen:
        return [None] * size
    if scheduler == "mh":
        return _maglev(tier_of(servers, chosen), set(chosen), size)
    weights = [1 if scheduler == "rr" else s.weight for s in chosen]
    return [chosen[i] for i in smooth_sequence(weights, size)]


def _maglev(tier: list[ServerState], usable: set[ServerState], size: int) -> list[ServerState | None]:
    """Maglev's table over the tier's weighted servers (healthy or not, so a server that
    comes back gets its own slots back); a slot whose owner cannot take new flows goes
    to the next usable owner further on, as balance/maglev.py's pick walks."""
    slots = populate([s.key for s in tier], [s.weight for s in tier], size)
    owners = [tier[i] for i in slots]
    out: list[ServerState | None] = [None] * size
    following: ServerState | None = None
    for step in range(2 * size - 1, -1, -1):  # twice backwards: the walk wraps around
        owner = owners[step % size]
        if owner in usable:
            following = owner
        if step < size:
            out[step] = following
    return out
