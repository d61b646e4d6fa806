"""The `kernel` section of the configuration and the rules a service with a kernel
topology (`nat`, `fullnat`, `dsr`) must follow. model.py imports the section; load.py
asks `service_problems` for the cross-section rules (a service and its pool). The kernel
plane that runs these services is fulcrum/kernel/."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Annotated

from pydantic import AfterValidator, Field

from fulcrum.config.strict import Strict
from fulcrum.config.types import Duration

if TYPE_CHECKING:
    from fulcrum.config.model import Config, Pool, Service

KERNEL_TOPOLOGIES = frozenset({"nat", "fullnat", "dsr"})
# The schedulers nftables can run without per-connection counts (IPVS names; `random`
# is weighted random). lc, wlc, sed, nq, ... need the live connection counts of every
# server, which the kernel keeps in conntrack but does not expose to a rule.
KERNEL_SCHEDULERS = ("rr", "wrr", "sh", "mh", "random")


class KernelSettings(Strict):
    """How fulcrum's nftables tables are named and sized (kernel topologies only)."""

    table: str = Field("fulcrum", pattern=r"^[A-Za-z][A-Za-z0-9_]{0,31}$",
                       description="name of the one nftables table fulcrum owns per family (inet, netdev)")
    buckets: int = Field(2520, ge=1, le=65536,
                         description="slots of the bucket map of rr, wrr, sh and random (weights are "
                                     "shares of it; 2520 divides evenly by 1..10 servers)")
    tcp_timeout: Duration = Field(900.0, gt=0, description="dsr: a TCP flow idle this long is forgotten (IPVS: 15m)")
    udp_timeout: Duration = Field(300.0, gt=0, description="dsr: a UDP flow idle this long is forgotten (IPVS: 5m)")
    flow_table_size: int = Field(65536, ge=16, le=4194304,
                                 description="dsr and persistence: entries each dynamic map may hold")


def _ip_address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError as err:
        raise ValueError(f"{text!r} is not an IP address") from err


IPText = Annotated[str, AfterValidator(_ip_address)]  # an IPv4 or IPv6 address, normalised


def is_kernel(service: Service) -> bool:
    return service.topology in KERNEL_TOPOLOGIES


def _family(address: str) -> int:
    """4 or 6; 0 for a DNS name (the kernel needs addresses)."""
    try:
        return ipaddress.ip_address(address).version
    except ValueError:
        return 0


def service_problems(name: str, service: Service, pool: Pool | None) -> list[tuple[str, str]]:
    """Why this service cannot run as configured ([] = it can). Paths name the field."""
    where = f"services.{name}"
    problems: list[tuple[str, str]] = []
    if not is_kernel(service):
        if service.protocol == "udp":
            problems.append((f"{where}.protocol", "udp needs a kernel topology (nat, fullnat or dsr); "
                                                  "the userspace proxy relays tcp only"))
        for field in ("persistence", "snat"):
            if getattr(service, field):
                problems.append((f"{where}.{field}", f"only used by kernel topologies (nat, fullnat, dsr), "
                                                     f"not {service.topology!r}"))
        return problems
    if service.mode != "tcp":
        problems.append((f"{where}.mode", f"topology {service.topology!r} balances layer 4 packets; "
                                          "http needs topology = 'proxy'"))
    for i, endpoint in enumerate(service.listen):
        if not _family(endpoint.host):
            problems.append((f"{where}.listen[{i}]", f"{endpoint}: a kernel topology needs an IP address, "
                                                     "not a name"))
        elif ipaddress.ip_address(endpoint.host).is_unspecified:
            problems.append((f"{where}.listen[{i}]", f"{endpoint}: a kernel topology needs the VIP's "
                                                     "own address, not a wildcard"))
    if service.snat and service.topology != "fullnat":
        problems.append((f"{where}.snat", "source addresses are only rewritten by topology 'fullnat'"))
    if pool is None:
        return problems
    if pool.scheduler not in KERNEL_SCHEDULERS:
        problems.append((f"pools.{service.pool}.scheduler",
                         f"{pool.scheduler!r} cannot run in the kernel (it needs live connection counts); "
                         f"service {name!r} has topology {service.topology!r}: use one of "
                         f"{', '.join(KERNEL_SCHEDULERS)}"))
    if pool.sticky.mode != "none":
        problems.append((f"pools.{service.pool}.sticky.mode",
                         f"kernel topologies keep clients on their server with the service's "
                         f"`persistence` (IPVS -p), not sticky {pool.sticky.mode!r}"))
    servers = list(pool.servers) + ([pool.emergency] if pool.emergency else [])
    for server in servers:
        if not _family(server.address):
            problems.append((f"pools.{service.pool}.servers", f"{server.key}: a kernel topology needs "
                                                              "server addresses, not names"))
            return problems
        if ipaddress.ip_address(server.address).is_loopback:
            # IPVS delivers to a local real server; nftables cannot send a forwarded packet
            # to a loopback address, so such a pool is the proxy's job
            problems.append((f"{where}.topology", f"{service.topology!r} cannot send packets to the loopback "
                                                  f"server {server.key}; use topology 'proxy' for local servers"))
            return problems
    families = {_family(e.host) for e in service.listen}
    if service.topology == "dsr":
        ports = {e.port for e in service.listen}
        for server in servers:
            if {server.port} != ports:
                problems.append((f"pools.{service.pool}.servers",
                                 f"dsr cannot change the port: server {server.key} but service {name!r} "
                                 f"listens on {', '.join(str(p) for p in sorted(ports))}"))
                break
    else:
        for family in sorted(families):
            if not any(_family(s.address) == family for s in servers):
                problems.append((f"pools.{service.pool}.servers",
                                 f"service {name!r} listens on IPv{family} but pool {service.pool!r} has no "
                                 f"IPv{family} server ({service.topology} cannot translate between families)"))
    for i, address in enumerate(service.snat):
        if _family(address) not in families:
            problems.append((f"{where}.snat[{i}]", f"{address}: the service has no IPv{_family(address)} VIP"))
    return problems


def notes(config: Config) -> list[str]:
    """What `fulcrum check` tells an operator about kernel services (not errors)."""
    out = []
    for name, service in config.services.items():
        if service.topology == "nat":
            out.append(f"services.{name}: topology 'nat' keeps the client address, so the servers must "
                       "send their replies back through this balancer (make it their default gateway, or "
                       "route the client networks via it); the balancer must forward (net.ipv4.ip_forward, "
                       "net.ipv6.conf.all.forwarding)")
        elif service.topology == "fullnat":
            out.append(f"services.{name}: topology 'fullnat': the servers see the balancer as the client; "
                       "the balancer must forward (net.ipv4.ip_forward, net.ipv6.conf.all.forwarding)")
        elif service.topology == "dsr":
            vips = " ".join(f"--vip {e.host}" for e in service.listen)
            out.append(f"services.{name}: topology 'dsr': the servers must be on the balancer's layer-2 "
                       f"segment and hold the VIP without answering ARP/ND for it: run "
                       f"`fulcrum realserver setup {vips}` on each server")
        if is_kernel(service):
            pool = config.pools.get(service.pool)
            if pool is not None and any(s.max_connections or s.hard_limit for s in pool.servers):
                out.append(f"pools.{service.pool}: max_connections and hard_limit are not enforced by "
                           f"kernel topologies (service {name!r})")
    return out
