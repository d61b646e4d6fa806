"""The kernel topologies as nftables objects: a pure function of the configuration and
the servers' states. No I/O: the applier (kernel/nftables.py) sends the result.

Layout (one table per family, both named `kernel.table`, default `fulcrum`):

  table inet fulcrum                                  nat and fullnat, IPv4 and IPv6
    map dispatch4 / dispatch6    VIP . proto . port  -> goto svc_<service>_v4|v6
    chain prerouting   (nat, dstnat)    ip daddr . meta l4proto . th dport vmap @dispatch4
    chain svc_<s>_v4   [persistence: a client in a server's set goes to that server]
                       <pick> vmap @svc_<s>_v4_b       pick = numgen inc|random, jhash saddr
    map   svc_<s>_v4_b bucket -> goto svc_<s>_v4_s<i>   (kernel/buckets.py fills it)
    chain svc_<s>_v4_s<i>   counter (new connections), [remember client], dnat to server
    set   svc_<s>_v4_s<i>_p clients that server keeps (persistence; dynamic, timeout)
    chain postrouting  (nat, srcnat)    fullnat: original VIP:port -> snat / masquerade
    chain forward      (filter)         per service: jump st_<s>_v4 (packet counters
                                        per server and direction, for `kernel_stats`)
    chain st_<s>_v4    ct direction . ct reply ip saddr . ct reply proto-src vmap @st_<s>_v4_m
    map   st_<s>_v4_m  original|reply . server . port -> goto st_<s>_v4_s<i>_in|_out (a counter)

  table netdev fulcrum                                dsr, per device, IPv4 and IPv6
    chain ingress_<dev> (filter, ingress) ip daddr . meta l4proto . th dport vmap @dispatch4_<dev>
    chain dsr_<s>_v4   ether daddr set <flow's server> vmap @dsr_<s>_v4_m (known flows)
                       [persistence: the client's remembered server]
                       <pick> vmap @dsr_<s>_v4_b        (new flows)
    chain dsr_<s>_v4_s<i>_new   counter (new flows), ether daddr set <server's MAC>
    chain dsr_<s>_v4_s<i>       counter, remember the flow (dynamic map with timeout),
                                ether saddr set <our MAC>, fwd to <dev>

The connection-tracking of nat keeps established flows on their server whatever the
maps say later; dsr has no conntrack on the balancer, so its flow map does that job
(as IPVS's connection table does for direct routing). Layout after nftlb
(github.com/zevenet/nftlb): vmaps from VIP to a service chain, `ether daddr set` and
`fwd` in netdev ingress for dsr."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from fulcrum.config.kernel import KernelSettings, is_kernel
from fulcrum.config.model import Service
from fulcrum.config.types import join_host_port
from fulcrum.kernel.buckets import ServerState, assign, bucket_size

# jhash seed of sh and mh: a constant, so every node hashes a client to the same bucket.
HASH_SEED = 0x66756C63  # "fulc"
FLOW_HASH_MOD = 4294967291  # the largest prime below 2**32


def safe_name(text: str) -> str:
    """A name nft accepts for chains and maps: letters, digits and underscores."""
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


@dataclass(frozen=True)
class PoolView:
    """What the renderer needs of a pool: its scheduler and its servers' states."""

    scheduler: str
    servers: tuple[ServerState, ...]
    emergency: ServerState | None = None
    options: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Link:
    """dsr: the device that reaches the servers (and receives the VIP's traffic)."""

    device: str
    mac: str


@dataclass(frozen=True)
class Chain:
    header: str  # "type nat hook prerouting priority dstnat; policy accept;" or "" for a regular chain
    rules: tuple[str, ...]


@dataclass
class Table:
    family: str  # "inet" or "netdev"
    name: str
    maps: dict[str, str] = field(default_factory=dict)  # name -> declaration
    sets: dict[str, str] = field(default_factory=dict)  # name -> declaration (all dynamic)
    chains: dict[str, Chain] = field(default_factory=dict)
    elements: dict[str, dict[str, str]] = field(default_factory=dict)  # static map -> key -> value
    # dynamic map -> values its elements may keep (servers still keeping flows)
    dynamic: dict[str, frozenset[str]] = field(default_factory=dict)
    # dynamic sets to empty: persistence of servers that no longer keep flows
    forget: frozenset[str] = frozenset()

    def add_chain(self, name: str, rules: Sequence[str], header: str = "") -> None:
        self.chains[name] = Chain(header, tuple(rules))

    def add_map(self, name: str, declaration: str, elements: Mapping[str, str] | None = None) -> None:
        self.maps[name] = declaration
        if elements is not None:
            self.elements[name] = dict(elements)


@dataclass
class Plan:
    tables: dict[str, Table]  # family -> table


@dataclass(frozen=True)
class Family:
    version: int

    @property
    def ip(self) -> str:  # the nft payload protocol
        return "ip" if self.version == 4 else "ip6"

    @property
    def addr_type(self) -> str:
        return "ipv4_addr" if self.version == 4 else "ipv6_addr"

    @property
    def suffix(self) -> str:
        return f"v{self.version}"

    def owns(self, address: str) -> bool:
        return ipaddress.ip_address(address).version == self.version

    def endpoint(self, address: str, port: int) -> str:
        """`dnat ip to 198.18.0.21:80` / `dnat ip6 to [fd00::21]:80`."""
        return join_host_port(address, port)


FAMILIES = (Family(4), Family(6))


def pick_expression(scheduler: str, family: Family, size: int) -> str:
    if scheduler in ("rr", "wrr"):
        return f"numgen inc mod {size}"
    if scheduler == "random":
        return f"numgen random mod {size}"
    # sh and mh: the client address, as IPVS hashes it
    return f"jhash {family.ip} saddr mod {size} seed {HASH_SEED:#x}"


def stat_comment(kind: str, service: str, family: Family, server: ServerState) -> str:
    """Names a rule's counter for kernel_stats (nft wants the comment last in a rule)."""
    return f'comment "{counter_name(kind, service, family.version, server.key)}"'


def counter_name(kind: str, service: str, version: int, server: str) -> str:
    return f"fulcrum {kind} {safe_name(service)} v{version} {server}"


def render(settings: KernelSettings, services: Mapping[str, Service], pools: Mapping[str, PoolView],
           links: Mapping[str, Link] | None = None, macs: Mapping[str, str] | None = None) -> Plan:
    """The desired tables. `links` (service -> device) and `macs` (server address ->
    MAC) are needed for dsr services; a dsr server whose MAC is unknown takes no flows."""
    links = links or {}
    macs = macs or {}
    inet = Table("inet", settings.table)
    netdev = Table("netdev", settings.table)
    for name in sorted(services):
        service = services[name]
        if not is_kernel(service):
            continue
        pool = pools[service.pool]
        for family in FAMILIES:
            if not any(family.owns(e.host) for e in service.listen):
                continue
            if service.topology == "dsr":
                link = links.get(name)
                if link is not None:
                    _dsr(netdev, settings, name, service, pool, family, link, macs)
            else:
                _nat(inet, settings, name, service, pool, family)
    _nat_base_chains(inet)
    plan = Plan({})
    for table in (inet, netdev):
        if table.chains:
            plan.tables[table.family] = table
    return plan


def _servers_for(pool: PoolView, family: Family | None, macs: Mapping[str, str] | None = None
                 ) -> tuple[list[ServerState], ServerState | None]:
    """The pool's servers a family can reach (nat: same family; dsr: all with a MAC)."""
    def fits(server: ServerState) -> bool:
        if family is not None and not family.owns(server.address):
            return False
        return macs is None or server.address in macs
    servers = [s for s in pool.servers if fits(s)]
    emergency = pool.emergency if pool.emergency is not None and fits(pool.emergency) else None
    return servers, emergency


def _server_chain(base: str, server: ServerState) -> str:
    return f"{base}_s{server.index}" if server.index >= 0 else f"{base}_se"


def _bucket_elements(chains: Sequence[ServerState | None], base: str, suffix: str = "") -> dict[str, str]:
    return {str(i): f"goto {_server_chain(base, s)}{suffix}" for i, s in enumerate(chains) if s is not None}


def _persistence(table: Table, settings: KernelSettings, service: Service, family: Family,
                 chain: str, server: ServerState) -> str:
    """IPVS persistence: one dynamic set per server holds the clients it keeps (a map
    from client to server cannot be written for IPv6 with nft 1.0.6). Returns the
    statement that (re)members the client in the server's chain."""
    name = f"{chain}_p"
    table.sets[name] = (f"type {family.addr_type}; flags dynamic,timeout; "
                        f"timeout {max(1, round(service.persistence))}s; size {settings.flow_table_size};")
    if not server.keeps_flows:
        table.forget |= {name}
    return f"update @{name} {{ {family.ip} saddr }} "


def _nat(table: Table, settings: KernelSettings, name: str, service: Service, pool: PoolView,
         family: Family) -> None:
    sid = safe_name(name)
    base = f"svc_{sid}_{family.suffix}"
    proto = service.protocol
    servers, emergency = _servers_for(pool, family)
    everyone = servers + ([emergency] if emergency else [])
    size = bucket_size(pool.scheduler, len(pool.servers), settings.buckets, pool.options)
    buckets = assign(pool.scheduler, servers, emergency, size)
    dispatch = table.elements.setdefault(f"dispatch{family.version}", {})
    for endpoint in service.listen:
        if family.owns(endpoint.host):
            dispatch[f"{endpoint.host} . {proto} . {endpoint.port}"] = f"goto {base}"
    rules = []
    if service.persistence:  # a remembered client goes to its server, if it keeps flows
        rules += [f"{family.ip} saddr @{_server_chain(base, s)}_p goto {_server_chain(base, s)}"
                  for s in everyone if s.keeps_flows]
    rules.append(f"{pick_expression(pool.scheduler, family, size)} vmap @{base}_b")
    table.add_chain(base, rules)
    table.add_map(f"{base}_b", f"typeof numgen inc mod {size} : verdict;", _bucket_elements(buckets, base))
    # Packet counters per server and direction, for every forwarded packet of the
    # service: one map lookup finds the counting chain (a rule per server and direction
    # evaluated 2 x servers rules, 3 conntrack loads each, on every packet).
    stats = f"st_{sid}_{family.suffix}"
    counting: dict[str, str] = {}
    for server in everyone:
        chain = _server_chain(base, server)
        remember = _persistence(table, settings, service, family, chain, server) if service.persistence else ""
        table.add_chain(chain, [
            f"meta l4proto {proto} counter {remember}"
            f"dnat {family.ip} to {family.endpoint(server.address, server.port)} "
            f"{stat_comment('conns', name, family, server)}"])
        counter = _server_chain(stats, server)
        for direction, kind in (("original", "in"), ("reply", "out")):
            counting.setdefault(f"{direction} . {server.address} . {server.port}", f"goto {counter}_{kind}")
            table.add_chain(f"{counter}_{kind}", [f"counter {stat_comment(kind, name, family, server)}"])
    # the protocol gives `ct reply proto-src` its type (a port) in the concatenation
    table.add_chain(stats, [f"meta l4proto {proto} ct direction . ct reply {family.ip} saddr . ct reply proto-src "
                            f"vmap @{stats}_m"])
    table.add_map(f"{stats}_m", f"type ct_dir . {family.addr_type} . inet_service : verdict;", counting)
    forward = table.chains.get("forward")
    post = table.chains.get("postrouting")
    forward_rules = list(forward.rules) if forward else []
    post_rules = list(post.rules) if post else []
    snat = [a for a in service.snat if family.owns(a)]
    for endpoint in service.listen:
        if not family.owns(endpoint.host):
            continue
        match = (f"meta l4proto {proto} ct original {family.ip} daddr {endpoint.host} "
                 f"ct original proto-dst {endpoint.port}")
        forward_rules.append(f"{match} jump st_{sid}_{family.suffix}")
        if service.topology == "fullnat":
            post_rules.append(f"{match} {_snat_statement(family, snat)}")
    table.add_chain("forward", forward_rules, "type filter hook forward priority filter; policy accept;")
    table.add_chain("postrouting", post_rules, "type nat hook postrouting priority srcnat; policy accept;")


def _snat_statement(family: Family, addresses: Sequence[str]) -> str:
    if not addresses:
        return "masquerade"
    if len(addresses) == 1:
        return f"snat {family.ip} to {addresses[0]}"
    choices = ", ".join(f"{i} : {a}" for i, a in enumerate(addresses))
    return f"snat {family.ip} to numgen inc mod {len(addresses)} map {{ {choices} }}"


def _nat_base_chains(table: Table) -> None:
    """prerouting dispatches by VIP; the maps exist once some service uses the family."""
    rules = []
    for family in FAMILIES:
        dispatch = f"dispatch{family.version}"
        if dispatch in table.elements:
            table.add_map(dispatch, f"type {family.addr_type} . inet_proto . inet_service : verdict;")
            rules.append(f"{family.ip} daddr . meta l4proto . th dport vmap @{dispatch}")
    if rules:
        table.add_chain("prerouting", rules, "type nat hook prerouting priority dstnat; policy accept;")


def _dsr(table: Table, settings: KernelSettings, name: str, service: Service, pool: PoolView,
         family: Family, link: Link, macs: Mapping[str, str]) -> None:
    sid = safe_name(name)
    dev = safe_name(link.device)
    base = f"dsr_{sid}_{family.suffix}"
    proto = service.protocol
    servers, emergency = _servers_for(pool, None, macs)
    everyone = servers + ([emergency] if emergency else [])
    size = bucket_size(pool.scheduler, len(pool.servers), settings.buckets, pool.options)
    buckets = assign(pool.scheduler, servers, emergency, size)
    # dispatch from the device's ingress chain
    dispatch = f"dispatch{family.version}_{dev}"
    if dispatch not in table.maps:
        table.add_map(dispatch, f"type {family.addr_type} . inet_proto . inet_service : verdict;", {})
        ingress = table.chains.get(f"ingress_{dev}")
        rules = list(ingress.rules) if ingress else []
        rules.append(f"{family.ip} daddr . meta l4proto . th dport vmap @{dispatch}")
        table.add_chain(f"ingress_{dev}", rules,
                        f'type filter hook ingress device "{link.device}" priority filter; policy accept;')
    for endpoint in service.listen:
        if family.owns(endpoint.host):
            table.elements[dispatch][f"{endpoint.host} . {proto} . {endpoint.port}"] = f"goto {base}"
    timeout = settings.tcp_timeout if proto == "tcp" else settings.udp_timeout
    keeping = [s for s in everyone if s.keeps_flows]
    # A flow is known by a 32-bit hash of the client's address and port: nft 1.0.6 cannot
    # write a dynamic map whose IPv6 key and data together pass 16 bytes. Two flows that
    # collide share a server, which is still a server that takes them.
    flow_key = f"jhash {family.ip} saddr . th sport mod {FLOW_HASH_MOD} seed {HASH_SEED:#x}"
    table.add_map(f"{base}_f", f"typeof numgen inc mod 2 : ether daddr; flags dynamic,timeout; "
                               f"timeout {max(1, round(timeout))}s; size {settings.flow_table_size};")
    table.dynamic[f"{base}_f"] = frozenset(macs[s.address] for s in keeping)
    # known flows (and persistent clients) go on to the chain of the server with that MAC;
    # one chain per MAC: two servers on one host would share it
    by_mac: dict[str, str] = {}
    for server in keeping:
        by_mac.setdefault(macs[server.address], f"goto {_server_chain(base, server)}")
    table.add_map(f"{base}_m", "type ether_addr : verdict;", by_mac)
    rules = [f"ether daddr set {flow_key} map @{base}_f ether daddr vmap @{base}_m"]
    if service.persistence:
        rules += [f"{family.ip} saddr @{_server_chain(base, s)}_p goto {_server_chain(base, s)}_new"
                  for s in keeping]
    rules.append(f"{pick_expression(pool.scheduler, family, size)} vmap @{base}_b")
    table.add_chain(base, rules)
    table.add_map(f"{base}_b", f"typeof numgen inc mod {size} : verdict;",
                  _bucket_elements(buckets, base, "_new"))
    for server in everyone:
        mac = macs[server.address]
        chain = _server_chain(base, server)
        remember = _persistence(table, settings, service, family, chain, server) if service.persistence else ""
        table.add_chain(f"{chain}_new", [
            f"counter {remember}ether daddr set {mac} goto {chain} {stat_comment('conns', name, family, server)}"])
        table.add_chain(chain, [
            f"counter update @{base}_f {{ {flow_key} : {mac} }} "
            f'ether saddr set {link.mac} fwd to "{link.device}" {stat_comment("in", name, family, server)}'])
