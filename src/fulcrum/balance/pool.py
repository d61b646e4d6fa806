"""The runtime of one pool: backends with their live state, the scheduler, the
client table, tiers (lbset, backup) and the emergency server. Pure: the caller
passes `now`.

Order of choice for a new connection:
 1. the client's remembered server (client table), if usable up to its hard limit;
 2. the lowest tier with a usable server: primaries by lbset, then backups by lbset;
    the scheduler chooses within that tier;
 3. the emergency server (pen -e), when nothing else is usable."""

from __future__ import annotations

from collections.abc import Iterable, Set
from typing import Any

from fulcrum.balance.base import Backend, PickContext
from fulcrum.balance.registry import make_scheduler
from fulcrum.balance.sticky import ClientTable
from fulcrum.config.model import Pool, Server


def backend_from(server: Server) -> Backend:
    return Backend(
        key=server.key, address=server.address, port=server.port, weight=server.weight,
        max_connections=server.max_connections, hard_limit=server.hard_limit,
        priority=server.priority, backup=server.backup, lbset=server.lbset,
        route=server.route, state=server.state,
    )


# schedulers that hash or track the client address (dh and lblc fall back to it)
_NONE: frozenset[int] = frozenset()  # nothing excluded
CLIENT_KEYED = frozenset({"sh", "dh", "mh", "hash", "lblc", "lblcr"})

_CONFIGURED = ("weight", "max_connections", "hard_limit", "priority", "backup", "lbset",
               "route", "state")


# schedulers that read live counts: with workers > 1 they read the node-wide ones
COUNT_BASED = frozenset({"lc", "wlc", "sed", "nq", "ovf", "lblc", "lblcr", "bybusyness", "weight",
                         "random2", "prio"})


class PoolRuntime:
    def __init__(self, name: str, config: Pool, shared: Any = None):
        self.name = name
        self.backends: list[Backend] = []
        self.emergency: Backend | None = None
        self.clients: Any = None  # ClientTable, or shared.clients.PoolClients with workers > 1
        # fulcrum.shared.SharedState with workers > 1: counters and the client table
        # live in memory every worker reads, so each makes the choice one process would.
        self.shared = shared
        self.apply(config)

    # -- configuration -------------------------------------------------------------

    def apply(self, config: Pool) -> None:
        """Adopt a new configuration, keeping the live state (health, counts,
        blacklist) of servers that are still there."""
        old = {b.key: b for b in self.backends}
        backends = []
        for server in config.servers:
            fresh = backend_from(server)
            kept = old.get(server.key)
            if kept is not None:
                for attr in _CONFIGURED:
                    setattr(kept, attr, getattr(fresh, attr))
                fresh = kept
            backends.append(fresh)
        self.config = config
        # read per request by the HTTP proxy: copied out of the model here, once per (re)load
        self.proxy_header = config.proxy_protocol != "none"  # PROXY header to the servers
        self.sticky_http = config.sticky.mode in ("cookie", "insert")  # a cookie picks the server
        before = self.all_backends()
        self.backends = backends
        if config.emergency is None:
            self.emergency = None
        elif self.emergency is None or self.emergency.key != config.emergency.key:
            self.emergency = backend_from(config.emergency)
        sticky = config.sticky
        if sticky.mode == "source":
            if self.clients is None:
                self.clients = (ClientTable(sticky.table_size, sticky.expiry) if self.shared is None
                                else self.shared.clients.view(self.name, sticky.expiry))
            else:
                self.clients.resize(sticky.table_size)
                self.clients.expiry = sticky.expiry
        else:
            self.clients = None
        if self.shared is not None:
            self._claim_slots(before)
        self.count_fields = self._shared_fields(config.scheduler)
        self.scheduler = make_scheduler(config.scheduler, self.backends, config.options)
        self.wants_client = self.clients is not None or config.scheduler in CLIENT_KEYED
        self._tiers = self._compute_tiers()

    def _claim_slots(self, before: list[Backend]) -> None:
        counters = self.shared.counters
        current = self.all_backends()
        for backend in current:
            if backend.slot < 0:
                backend.slot = counters.claim(self.name, backend.key)
        kept = {id(b) for b in current}
        for backend in before:
            if id(backend) not in kept:
                counters.release(backend.slot)
        if self.clients is not None:
            self.clients.keys = {b.slot: b.key for b in current}
            self.clients.slots = {b.key: b.slot for b in current}

    def _shared_fields(self, scheduler: str) -> tuple[int, ...]:
        """Which node-wide counts a pick must see first: active connections for the
        count-based schedulers and the connection limits, bytes for bytraffic."""
        if self.shared is None:
            return ()
        from fulcrum.shared.counters import ACTIVE, TRAFFIC

        limits = any(b.max_connections or b.hard_limit for b in self.backends)
        return ((ACTIVE,) if scheduler in COUNT_BASED or limits else ()) + (
            (TRAFFIC,) if scheduler == "bytraffic" else ())

    def sync_counters(self) -> None:
        """Copy the node-wide counts into every Backend (status, admin); a no-op with
        one worker, whose Backends hold the counts themselves."""
        if self.shared is None:
            return
        for backend in self.all_backends():
            backend.active, backend.total, backend.traffic, backend.failures = \
                self.shared.counters.read(backend.slot)

    def _compute_tiers(self) -> list[frozenset[int]]:
        tiers: dict[tuple[bool, int], set[int]] = {}
        for backend in self.backends:
            tiers.setdefault((backend.backup, backend.lbset), set()).add(id(backend))
        return [frozenset(tiers[k]) for k in sorted(tiers)]

    # -- usability ---------------------------------------------------------------

    def usable(self, backend: Backend, now: float, sticky: bool = False) -> bool:
        """May `backend` take a new connection? Sticky clients may continue on a
        draining server and up to the hard limit; new clients stop at the soft limit."""
        if not backend.healthy or backend.state == "disabled":
            return False
        if now < backend.blacklisted_until:
            return False
        if backend.hard_limit and backend.active >= backend.hard_limit:
            return False
        if sticky:
            return True
        if backend.state == "drain" or backend.weight == 0:
            return False
        return not (backend.max_connections and backend.active >= backend.max_connections)

    # -- choice ------------------------------------------------------------------

    def remembered(self, client: str | None, now: float) -> Backend | None:
        if self.clients is None or client is None:
            return None
        key = self.clients.get(client, now)
        if key is None:
            return None
        for backend in self.backends:
            if backend.key == key:
                return backend
        return None

    def pick(self, now: float, client: str | None = None, key: str | None = None,
             exclude: Iterable[Backend] = ()) -> Backend | None:
        if self.count_fields:
            get = self.shared.counters.get
            if self.count_fields[0] == 0:
                for backend in self.backends:
                    backend.active = get(backend.slot, 0)
            if self.count_fields[-1] == 2:
                for backend in self.backends:
                    backend.traffic = get(backend.slot, 2)
        # (per request or connection: no set built and no call made when there is nothing to ask)
        excluded = {id(b) for b in exclude} if exclude else _NONE
        chosen = self.remembered(client, now) if self.clients is not None else None
        if chosen is not None and (id(chosen) in excluded or not self.usable(chosen, now, sticky=True)):
            chosen = None
        if chosen is None:
            chosen = self._schedule(now, client, key, excluded)
        if chosen is None and self.emergency is not None and id(self.emergency) not in excluded:
            if self.emergency.healthy and now >= self.emergency.blacklisted_until:
                return self.emergency
        if chosen is not None and self.clients is not None and client is not None:
            self.clients.put(client, chosen.key, now)
        return chosen

    def _schedule(self, now: float, client: str | None, key: str | None,
                  excluded: Set[int]) -> Backend | None:
        usable = self.usable
        if len(self._tiers) == 1 and not excluded:
            # the common case (one tier, first try): no membership tests per candidate
            return self.scheduler.pick(PickContext(
                usable=lambda b: usable(b, now), now=now, client=client, key=key))
        for tier in self._tiers:
            def in_tier(b: Backend, tier: frozenset[int] = tier) -> bool:
                return id(b) in tier and id(b) not in excluded and usable(b, now)
            chosen = self.scheduler.pick(PickContext(usable=in_tier, now=now, client=client, key=key))
            if chosen is not None:
                return chosen
        return None

    # -- events --------------------------------------------------------------------

    def taken(self, backend: Backend) -> None:
        backend.active += 1
        backend.total += 1
        if self.shared is not None:
            self.shared.counters.add(backend.slot, 0, 1)
            self.shared.counters.add(backend.slot, 1, 1)
        if backend is not self.emergency:
            self.scheduler.taken(backend)

    def released(self, backend: Backend, traffic: int = 0) -> None:
        backend.active -= 1
        backend.traffic += traffic
        if self.shared is not None:
            self.shared.counters.add(backend.slot, 0, -1)
            self.shared.counters.add(backend.slot, 2, traffic)
        if backend is not self.emergency:
            self.scheduler.released(backend)

    def connect_failed(self, backend: Backend, now: float) -> None:
        """pen -b: a server that refused a connection is skipped for `blacklist` seconds."""
        backend.failures += 1
        if self.shared is not None:
            self.shared.counters.add(backend.slot, 3, 1)
        if self.config.blacklist:
            backend.blacklisted_until = now + self.config.blacklist

    def set_healthy(self, backend: Backend, healthy: bool) -> None:
        if backend.healthy != healthy:
            backend.healthy = healthy
            self.scheduler.rebuild()

    def set_weight(self, backend: Backend, weight: int) -> None:
        backend.weight = weight
        self.scheduler.rebuild()

    def find(self, key: str) -> Backend | None:
        for backend in self.all_backends():
            if backend.key == key:
                return backend
        return None

    def all_backends(self) -> list[Backend]:
        return self.backends + ([self.emergency] if self.emergency else [])
