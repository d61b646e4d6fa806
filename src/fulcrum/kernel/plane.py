"""The kernel data plane as the node sees it: started with the configuration, told
about every change of the servers' states and about reloads, stopped on SIGTERM.

`KernelPlane` is the interface; `NftPlane` implements it with nftables (render.py,
nftables.py). An IPVS back end would implement the same four methods.

`kernel_stats(config, pools=None, table=None)` is the read side, for `fulcrum ipvsadm`
and status pages: one dict per (kernel service, family) -

    {"service": "web", "family": 4, "protocol": "tcp", "topology": "nat",
     "scheduler": "wrr", "persistence": 0.0, "listen": ["198.18.0.100:80"],
     "servers": [{"server": "198.18.0.21:80", "address": "198.18.0.21", "port": 80,
                  "forward": "Masq",      # Masq (nat), FullNat (fullnat), Route (dsr)
                  "weight": 3,             # the weight now (ctl may have changed it)
                  "state": "up",           # up, down, drain, disabled
                  "emergency": False,
                  "connections": 12,       # new connections/flows sent to it
                  "in_packets": 80, "in_bytes": 5200,     # client -> server
                  "out_packets": 70, "out_bytes": 9100},  # server -> client (0 for dsr)
                 ...]}

Counters are nftables counters of fulcrum's own table (named by rule comments); they
restart from zero when the table is created (start) or a service's chains change."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from fulcrum.balance.base import Backend
from fulcrum.config.kernel import is_kernel
from fulcrum.config.model import Config, Pool
from fulcrum.kernel.buckets import ServerState
from fulcrum.kernel.nftables import Applier, counters
from fulcrum.kernel.render import FAMILIES, Link, Plan, PoolView, counter_name, render

log = logging.getLogger("fulcrum.kernel")

FORWARD = {"nat": "Masq", "fullnat": "FullNat", "dsr": "Route"}

Views = Mapping[str, PoolView]  # pool name -> servers' states


class KernelPlane(Protocol):
    def start(self, config: Config, pools: Views) -> None:
        """Install the kernel services of `config`, replacing whatever fulcrum left."""

    def apply(self, config: Config, pools: Views) -> None:
        """A reload or a change of servers' states: update in place."""

    def stop(self) -> None:
        """Remove everything the plane installed."""

    def stats(self) -> list[dict[str, Any]]:
        """kernel_stats of the running plane."""


def wants_kernel(config: Config) -> bool:
    return any(is_kernel(s) for s in config.services.values())


def _state(index: int, backend: Backend) -> ServerState:
    return ServerState(index=index, key=backend.key, address=backend.address, port=backend.port,
                       weight=backend.weight, healthy=backend.healthy, state=backend.state,
                       backup=backend.backup, lbset=backend.lbset)


def pool_views(config: Config, pools: Mapping[str, Any]) -> dict[str, PoolView]:
    """Snapshot (on the event loop) of the runtime pools kernel services use."""
    views = {}
    for service in config.services.values():
        if is_kernel(service) and service.pool in pools:
            runtime = pools[service.pool]
            views[service.pool] = PoolView(
                scheduler=runtime.config.scheduler,
                servers=tuple(_state(i, b) for i, b in enumerate(runtime.backends)),
                emergency=_state(-1, runtime.emergency) if runtime.emergency else None,
                options=dict(runtime.config.options))
    return views


def configured_views(config: Config) -> dict[str, PoolView]:
    """Views from the configuration alone (every server up), for a process that is not the node."""
    def view(pool: Pool) -> PoolView:
        def state(index: int, s: Any) -> ServerState:
            return ServerState(index=index, key=s.key, address=s.address, port=s.port, weight=s.weight,
                               state=s.state, backup=s.backup, lbset=s.lbset)
        return PoolView(pool.scheduler, tuple(state(i, s) for i, s in enumerate(pool.servers)),
                        state(-1, pool.emergency) if pool.emergency else None, dict(pool.options))
    return {name: view(pool) for name, pool in config.pools.items()}


class NftPlane:
    """KernelPlane on nftables. Blocking (it runs `nft` and `ip`): the node calls it
    from a worker thread, one call at a time."""

    def __init__(self, config: Config):
        self.config = config
        self.applier = Applier(config.kernel.table)
        self.links: dict[str, Link] = {}
        self.macs: dict[str, str] = {}
        self.unresolved: set[str] = set()  # dsr servers whose MAC is not known yet
        self.views: Views = {}

    def start(self, config: Config, pools: Views) -> None:
        self.config, self.views = config, pools
        self._learn_network(config, pools)
        self.applier.replace(self._plan())
        self._warn_forwarding(config)
        log.info("kernel plane: nftables table %r installed", config.kernel.table)

    def apply(self, config: Config, pools: Views) -> None:
        if config.kernel.table != self.applier.table_name:
            self.stop()
            self.applier = Applier(config.kernel.table)
            self.start(config, pools)
            return
        forwarding_changed = config.services != self.config.services
        self.config, self.views = config, pools
        self._learn_network(config, pools)
        self.applier.update(self._plan())
        if forwarding_changed:
            self._warn_forwarding(config)

    def stop(self) -> None:
        self.applier.remove()
        log.info("kernel plane: nftables table %r removed", self.applier.table_name)

    def stats(self) -> list[dict[str, Any]]:
        return kernel_stats(self.config, self.views)

    def _plan(self) -> Plan:
        return render(self.config.kernel, self.config.services, self.views, self.links, self.macs)

    def _learn_network(self, config: Config, pools: Views) -> None:
        """dsr: the device towards the servers and the servers' MAC addresses."""
        from fulcrum.kernel.netinfo import link_mac, resolve_mac, route_device

        self.unresolved = set()
        for name, service in config.services.items():
            if service.topology != "dsr" or service.pool not in pools:
                continue
            view = pools[service.pool]
            servers = list(view.servers) + ([view.emergency] if view.emergency else [])
            link = self.links.get(name)
            if link is None:
                device = route_device(servers[0].address)
                mac = link_mac(device) if device else None
                if device is None or mac is None:
                    log.error("service %s: no route to %s, dsr cannot run", name, servers[0].address)
                    continue
                link = self.links[name] = Link(device, mac)
            for server in servers:
                if server.address in self.macs or not server.healthy:
                    continue
                mac = resolve_mac(server.address, link.device)
                if mac is None:
                    self.unresolved.add(server.address)
                    log.warning("service %s: server %s does not answer ARP/ND on %s; it takes no flows "
                                "until it does", name, server.address, link.device)
                else:
                    self.macs[server.address] = mac

    def _warn_forwarding(self, config: Config) -> None:
        from fulcrum.kernel.netinfo import forwarding_off

        versions = {f.version for s in config.services.values() if s.topology in ("nat", "fullnat")
                    for f in FAMILIES if any(f.owns(e.host) for e in s.listen)}
        for name in forwarding_off(versions):
            log.error("kernel plane: %s is 0: nat and fullnat services need the balancer to forward "
                      "(sysctl -w %s=1)", name, name)


def _server_state(server: ServerState) -> str:
    if not server.healthy:
        return "down"
    return "drain" if server.state == "enabled" and server.weight == 0 else server.state.replace("enabled", "up")


def kernel_stats(config: Config, pools: Views | None = None, table: str | None = None) -> list[dict[str, Any]]:
    """Per kernel service and family: its servers, forward method, weight and counters
    (see the module docstring). `pools` defaults to the configured states."""
    views = pools if pools is not None else configured_views(config)
    name = table or config.kernel.table
    found = {**counters("inet", name), **counters("netdev", name)}
    out = []
    for service_name in sorted(config.services):
        service = config.services[service_name]
        if not is_kernel(service) or service.pool not in views:
            continue
        view = views[service.pool]
        everyone = list(view.servers) + ([view.emergency] if view.emergency else [])
        for family in FAMILIES:
            listen = [str(e) for e in service.listen if family.owns(e.host)]
            if not listen:
                continue
            servers = []
            for server in everyone:
                if service.topology != "dsr" and not family.owns(server.address):
                    continue
                conns, inbound, outbound = (
                    found.get(counter_name(kind, service_name, family.version, server.key), (0, 0))
                    for kind in ("conns", "in", "out"))
                servers.append({
                    "server": server.key, "address": server.address, "port": server.port,
                    "forward": FORWARD[service.topology], "weight": server.weight,
                    "state": _server_state(server), "emergency": server.index < 0,
                    "connections": conns[0], "in_packets": inbound[0], "in_bytes": inbound[1],
                    "out_packets": outbound[0], "out_bytes": outbound[1],
                })
            out.append({"service": service_name, "family": family.version, "protocol": service.protocol,
                        "topology": service.topology, "scheduler": view.scheduler,
                        "persistence": service.persistence, "listen": listen, "servers": servers})
    return out
