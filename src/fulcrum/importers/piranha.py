"""Pulse/Piranha's lvs.cf, read into the one model for one of its two nodes.

    fulcrum import piranha /etc/sysconfig/ha/lvs.cf -o lb0.toml --node primary
    fulcrum import piranha /etc/sysconfig/ha/lvs.cf -o lb1.toml --node backup

lvs.cf(5) describes a pair of LVS routers (`primary`, `backup`) that pulse keeps
active/passive with heartbeats, and `virtual` servers whose real servers nanny checks. Here
the pair becomes VRRP virtual routers (one per interface that carries the virtual
addresses, and one for `nat_router`, the real servers' gateway), the heartbeat timers
become the advert interval, `virtual` blocks become kernel services (`network = nat` ->
topology nat, `direct` -> dsr) and nanny's send/expect becomes the pool's health check.
Whatever has no fulcrum meaning is warned `file:line`. docs/migration.md has the table."""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fulcrum.config.kernel import KERNEL_SCHEDULERS
from fulcrum.config.load import load_dict
from fulcrum.config.types import join_host_port
from fulcrum.importers.heartbeat import OTHER_PRIORITY, PREFERRED_PRIORITY, advert_interval

TOPOLOGIES = {"nat": "nat", "direct": "dsr", "tunnel": "fullnat"}
# lvs.cf(5) and piranha's defaults when a key is absent
DEFAULT_KEEPALIVE = 6.0
DEFAULT_DEADTIME = 18.0
DEFAULT_TIMEOUT = 6.0
DEFAULT_REENTRY = 15.0
DEFAULT_SCHEDULER = "wlc"
FIRST_VRID = 1
# keys piranha writes that change nothing fulcrum does
IGNORED = {"serial_no"}


class PiranhaError(ValueError):
    """A file pulse would not read, or a node it does not name: `file:line: reason`."""


@dataclass
class Entry:
    key: str
    value: str
    where: str


@dataclass
class Block:
    kind: str  # "virtual" or "server"
    name: str
    where: str
    entries: list[Entry] = field(default_factory=list)
    children: list[Block] = field(default_factory=list)

    def get(self, key: str) -> Entry | None:
        return next((entry for entry in self.entries if entry.key == key), None)


def unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


def parse(path: Path) -> Block:
    """lvs.cf: `key = value` lines, `virtual NAME {` / `server NAME {` blocks, `}`,
    `#` comments outside quoted values."""
    root = Block("top", "", str(path))
    stack = [root]
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        where = f"{path}:{number}"
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line == "}":
            if len(stack) == 1:
                raise PiranhaError(f"{where}: '}}' without an open block")
            stack.pop()
            continue
        block = re.fullmatch(r"(virtual|server|failover)\s+(\S+)\s*\{", line)
        if block:
            child = Block(block.group(1), block.group(2), where)
            stack[-1].children.append(child)
            stack.append(child)
            continue
        key, eq, value = line.partition("=")
        if not eq or not key.strip() or " " in key.strip():
            raise PiranhaError(f"{where}: expected `key = value`, `virtual NAME {{`, `server NAME {{` or `}}`")
        stack[-1].entries.append(Entry(key.strip(), unquote(value), where))
    if len(stack) > 1:
        raise PiranhaError(f"{stack[-1].where}: {stack[-1].kind} {stack[-1].name}: '{{' is never closed")
    return root


def address_device(entry: Entry) -> tuple[str, str | None]:
    """`192.168.10.100 eth0:1` -> ("192.168.10.100", "eth0"): pulse puts the address on an
    alias; fulcrum adds it to the device itself."""
    words = entry.value.split()
    if not words:
        raise PiranhaError(f"{entry.where}: {entry.key} needs an address")
    try:
        address = str(ipaddress.ip_address(words[0]))
    except ValueError:
        raise PiranhaError(f"{entry.where}: {entry.key} {words[0]!r} is not an IP address") from None
    device = words[1].split(":", 1)[0] if len(words) > 1 else None
    return address, device


def prefix(entry: Entry | None, address: str) -> str:
    """A netmask (`255.255.255.0`) as a prefix length; none: a host address."""
    if entry is None:
        return "128" if ":" in address else "32"
    try:
        network = ipaddress.ip_network(f"{address}/{entry.value}", strict=False)
    except ValueError:
        raise PiranhaError(f"{entry.where}: {entry.key} {entry.value!r} is not a netmask") from None
    return str(network.prefixlen)


def number(entry: Entry) -> float:
    try:
        value = float(entry.value)
    except ValueError:
        raise PiranhaError(f"{entry.where}: {entry.key} {entry.value!r} is not a number") from None
    if value < 0:
        raise PiranhaError(f"{entry.where}: {entry.key} must not be negative")
    return value


def flag(entry: Entry) -> bool:
    if entry.value not in ("0", "1"):
        raise PiranhaError(f"{entry.where}: {entry.key} must be 0 or 1")
    return entry.value == "1"


class PiranhaImport:
    def __init__(self, node: str):
        self.node = node
        self.warnings: list[str] = []
        self.settings: dict[str, Entry] = {}
        self.services: dict[str, Any] = {}
        self.pools: dict[str, Any] = {}
        # interface -> [(vip with prefix, where)], in order
        self.vips: dict[str, list[tuple[str, str]]] = {}

    def warn(self, where: str, message: str) -> None:
        self.warnings.append(f"{where}: {message}")

    def setting(self, key: str) -> Entry | None:
        return self.settings.get(key)

    # -- global settings ----------------------------------------------------------------

    def read_globals(self, root: Block) -> None:
        for entry in root.entries:
            if entry.key in self.settings:
                self.warn(entry.where, f"{entry.key} is set again: the last value is used")
            self.settings[entry.key] = entry
        service = self.setting("service")
        if service is not None and service.value != "lvs":
            raise PiranhaError(f"{service.where}: service = {service.value}: only `service = lvs` (virtual "
                               "servers) is imported; failover services (fos) are not")
        for key in ("primary", "backup"):
            if self.setting(key) is None:
                raise PiranhaError(f"{root.where}: `{key} = ADDRESS` is missing: a two-node configuration needs it")
        known = {"service", "primary", "backup", "primary_private", "backup_private", "backup_active",
                 "heartbeat", "heartbeat_port", "keepalive", "deadtime", "network", "nat_router", "nat_nmask",
                 "monitor_links", "syncdaemon", "syncd_iface", "syncd_id", *IGNORED}
        for entry in root.entries:
            if entry.key in known:
                continue
            if entry.key == "debug_level":
                self.warn(entry.where, f"debug_level = {entry.value}: fulcrum's log level is `log.level`: not mapped")
            elif entry.key in ("tcp_timeout", "tcpfin_timeout", "udp_timeout"):
                self.warn(entry.where, f"{entry.key}: IPVS connection timeouts are conntrack's in the kernel data "
                                       "plane (sysctl net.netfilter.nf_conntrack_*_timeout*): not mapped")
            elif entry.key == "rsh_command":
                self.warn(entry.where, "rsh_command: pulse copied lvs.cf with it; fulcrum's nodes share configuration "
                                       "changes themselves (`sync` section): not mapped")
            else:
                self.warn(entry.where, f"{entry.key} = {entry.value}: not mapped")

    def node_addresses(self) -> tuple[str, str, str]:
        """(this node's role, its address, the peer's address)."""
        primary, backup = self.settings["primary"], self.settings["backup"]
        roles = {"primary": (primary, backup), "backup": (backup, primary),
                 primary.value: (primary, backup), backup.value: (backup, primary)}
        if self.node not in roles:
            raise PiranhaError(f"{primary.where}: --node {self.node}: give `primary`, `backup` or one of their "
                               f"addresses ({primary.value}, {backup.value})")
        own, peer = roles[self.node]
        return own.key, own.value, peer.value

    # -- the pair: VRRP routers -------------------------------------------------------------

    def timers(self) -> str:
        keepalive = number(self.settings["keepalive"]) if "keepalive" in self.settings else DEFAULT_KEEPALIVE
        deadtime_entry = self.setting("deadtime")
        deadtime = number(deadtime_entry) if deadtime_entry else DEFAULT_DEADTIME
        interval = advert_interval(deadtime, OTHER_PRIORITY)
        if abs(interval - keepalive) > 0.005:
            where = deadtime_entry.where if deadtime_entry else self.settings["primary"].where
            self.warn(where, f"keepalive {keepalive:g}, deadtime {deadtime:g}: VRRP declares the master dead after "
                             f"3 adverts plus a skew, so adverts go every {interval:g}s and the backup takes over "
                             f"after about {deadtime:g}s, as pulse did")
        return f"{interval:g}s"

    def routers(self, role: str, own: str, peer: str) -> dict[str, Any]:
        base: dict[str, Any] = {"priority": PREFERRED_PRIORITY if role == "primary" else OTHER_PRIORITY,
                                "advert_interval": self.timers(), "preempt": True}
        heartbeat = self.setting("heartbeat")
        if heartbeat is not None and not flag(heartbeat):
            self.warn(heartbeat.where, "heartbeat = 0: pulse then never fails over; fulcrum's nodes always "
                                       "advertise (VRRP)")
        port = self.setting("heartbeat_port")
        if port is not None:
            self.warn(port.where, f"heartbeat_port = {port.value}: VRRP is IP protocol 112, it uses no UDP port")
        for key in ("primary_private", "backup_private"):
            entry = self.setting(key)
            if entry is not None:
                self.warn(entry.where, f"{key}: VRRP adverts take one path (unicast between {own} and {peer}); "
                                       "the second heartbeat network is not mapped")
        active = self.setting("backup_active")
        if active is not None and not flag(active):
            self.warn(active.where, "backup_active = 0: the backup node was switched off in pulse; "
                                    "its fulcrum configuration is written anyway")
        monitor = self.setting("monitor_links")
        track_links = monitor is not None and flag(monitor)
        nat_router = self.setting("nat_router")
        if nat_router is not None:
            address, device = address_device(nat_router)
            if device is None:
                raise PiranhaError(f"{nat_router.where}: nat_router needs `ADDRESS DEVICE[:N]`")
            vip = f"{address}/{prefix(self.setting('nat_nmask'), address)}"
            self.vips.setdefault(device, []).append((vip, nat_router.where))
        routers: dict[str, Any] = {}
        for index, (device, vips) in enumerate(self.vips.items()):
            for family in (4, 6):
                addresses = list(dict.fromkeys(vip for vip, _ in vips
                                               if ipaddress.ip_interface(vip).version == family))
                if not addresses:
                    continue
                router = dict(base, vrid=FIRST_VRID + index, interface=device, vips=addresses)
                if ipaddress.ip_address(own).version == family == ipaddress.ip_address(peer).version:
                    # pulse heartbeats are unicast UDP between primary and backup
                    router.update(unicast_src=own, unicast_peers=[peer])
                if track_links:
                    router["track"] = {"interfaces": [{"name": device}]}
                name = device if family == 4 else f"{device}_v6"
                routers[name] = router
        if len(routers) > 1:
            self.warn(self.settings["primary"].where,
                      f"pulse moved every address together; fulcrum runs one VRRP router per interface and "
                      f"family ({', '.join(routers)}), with the same priorities so they move together when a node "
                      "fails")
        return routers

    # -- virtual servers ---------------------------------------------------------------

    def topology(self) -> str:
        network = self.setting("network")
        if network is None:
            return "dsr"  # piranha's default: direct routing
        if network.value not in TOPOLOGIES:
            raise PiranhaError(f"{network.where}: network = {network.value}: expected nat, direct or tunnel")
        if network.value == "tunnel":
            self.warn(network.where, "network = tunnel: fulcrum has no IP-in-IP tunnel; mapped to fullnat, which "
                                     "reaches servers anywhere, but they then see the balancer as the client")
        elif network.value == "nat" and self.setting("nat_router") is None:
            self.warn(network.where, "network = nat without nat_router: the real servers' gateway does not move "
                                     "with the virtual addresses")
        return TOPOLOGIES[network.value]

    def read_virtual(self, block: Block, topology: str) -> None:
        active = block.get("active")
        if active is not None and not flag(active):
            self.warn(block.where, f"virtual {block.name}: active = 0: left out")
            return
        address_entry, port_entry = block.get("address"), block.get("port")
        if address_entry is None or port_entry is None:
            raise PiranhaError(f"{block.where}: virtual {block.name} needs `address` and `port`")
        address, device = address_device(address_entry)
        port = int(number(port_entry))
        if device is None:
            raise PiranhaError(f"{address_entry.where}: address needs `ADDRESS DEVICE[:N]` (the interface "
                               "the virtual address is put on)")
        self.vips.setdefault(device, []).append(
            (f"{address}/{prefix(block.get('vip_nmask'), address)}", address_entry.where))
        name = re.sub(r"[^0-9A-Za-z_-]+", "_", block.name)
        if name in self.services:
            raise PiranhaError(f"{block.where}: a second virtual {block.name}")
        service: dict[str, Any] = {"listen": [join_host_port(address, port)], "pool": name, "mode": "tcp",
                                   "topology": topology}
        pool: dict[str, Any] = {"scheduler": self.scheduler(block), "servers": []}
        known = {"active", "address", "port", "vip_nmask", "scheduler", "send", "expect", "use_regex",
                 "send_program", "timeout", "reentry", "load_monitor", "quiesce_server"}
        for entry in block.entries:
            key = entry.key
            if key in known:
                continue
            if key == "protocol":
                if entry.value not in ("tcp", "udp"):
                    raise PiranhaError(f"{entry.where}: protocol = {entry.value}: expected tcp or udp")
                if entry.value == "udp":
                    service["protocol"] = "udp"
            elif key == "persistent":
                seconds = int(number(entry))
                if seconds:
                    service["persistence"] = f"{seconds}s"
            elif key == "pmask":
                full = "255.255.255.255" if ":" not in address else "128"
                if entry.value != full and block.get("persistent") is not None:
                    self.warn(entry.where, f"pmask = {entry.value}: fulcrum keeps each client address on its "
                                           "server; persistence by network is not mapped")
            elif key == "fwmark":
                self.warn(entry.where, f"fwmark = {entry.value}: fulcrum has no firewall-mark services; this "
                                       f"virtual server listens on {join_host_port(address, port)} only")
            elif key == "sorry_server":
                try:
                    sorry = str(ipaddress.ip_address(entry.value.split()[0]))
                except (ValueError, IndexError):
                    raise PiranhaError(f"{entry.where}: sorry_server {entry.value!r} is not an IP address") from None
                pool["emergency"] = {"address": sorry, "port": port}
            else:
                self.warn(entry.where, f"{key} = {entry.value}: not mapped")
        pool["health"] = self.health(block, port)
        load = block.get("load_monitor")
        if load is not None and load.value != "none":
            self.warn(load.where, f"load_monitor = {load.value}: fulcrum does not change weights from the "
                                  "servers' load average: not mapped")
        for child in block.children:
            if child.kind != "server":
                raise PiranhaError(f"{child.where}: {child.kind} inside a virtual block")
            pool["servers"].append(self.server(child, port, topology))
        if not pool["servers"]:
            self.warn(block.where, f"virtual {block.name} has no server: left out (a fulcrum pool needs one)")
            return
        self.services[name] = service
        self.pools[name] = pool

    def scheduler(self, block: Block) -> str:
        entry = block.get("scheduler")
        name = entry.value if entry is not None else DEFAULT_SCHEDULER
        if name in KERNEL_SCHEDULERS:
            return name
        self.warn(entry.where if entry else block.where,
                  f"scheduler = {name}: the kernel data plane keeps no connection counts per server; wrr used "
                  f"(the weights are kept). Kernel schedulers: {', '.join(KERNEL_SCHEDULERS)}")
        return "wrr"

    def health(self, block: Block, port: int) -> dict[str, Any]:
        """nanny connects every `timeout` seconds (pulse gives it as nanny's --interval), takes
        a server out at the first failure and back in after it answered for `reentry` seconds."""
        timeout_entry, reentry_entry = block.get("timeout"), block.get("reentry")
        timeout = max(number(timeout_entry), 0.01) if timeout_entry else DEFAULT_TIMEOUT
        reentry = number(reentry_entry) if reentry_entry else DEFAULT_REENTRY
        health: dict[str, Any] = {"interval": f"{timeout:g}s", "timeout": f"{timeout:g}s", "fall": 1,
                                  "rise": min(max(1, math.ceil(reentry / timeout)), 100)}
        send, expect, program = block.get("send"), block.get("expect"), block.get("send_program")
        regex = block.get("use_regex")
        if program is not None:
            health.update(kind="script", command=program.value)
            if expect is not None:
                self.warn(expect.where, "expect with send_program: fulcrum takes the program's exit status "
                                        "(0 = up), not its output: make the program exit non-zero on failure")
            return health
        request = send.value if send is not None else ""
        match = re.match(r"(GET|HEAD|OPTIONS) (/\S*) HTTP/1\.[01]", request)
        if match:
            health.update(kind="http", method=match.group(1), path=match.group(2))
            if expect is not None:
                status = re.search(r"\b([1-5]\d\d)\b", expect.value)
                if status:
                    health["expect_status"] = [int(status.group(1))]
                elif expect.value.startswith("HTTP"):
                    self.warn(expect.where, f"expect = \"{expect.value}\": nanny took any HTTP answer; fulcrum's "
                                            "http check wants a 2xx or 3xx status")
                else:
                    health["expect_body"] = expect.value if regex and flag(regex) else re.escape(expect.value)
            return health
        health["kind"] = "tcp"
        dialogue = send or expect
        if dialogue is not None:
            self.warn(dialogue.where, "send/expect on a non-HTTP service: fulcrum checks that the server accepts a "
                             "connection; the dialogue is not mapped (use send_program for a script)")
        return health

    def server(self, block: Block, port: int, topology: str) -> dict[str, Any]:
        address_entry = block.get("address")
        if address_entry is None:
            raise PiranhaError(f"{block.where}: server {block.name} needs `address`")
        address, _ = address_device(address_entry)
        server: dict[str, Any] = {"address": address, "port": port}
        for entry in block.entries:
            if entry.key == "address":
                continue
            if entry.key == "weight":
                server["weight"] = int(number(entry))
            elif entry.key == "active":
                if not flag(entry):
                    server["state"] = "disabled"
            elif entry.key == "port":
                server["port"] = int(number(entry))
            else:
                self.warn(entry.where, f"{entry.key} = {entry.value} (server {block.name}): not mapped")
        if topology == "dsr" and server["port"] != port:
            self.warn(block.where, f"server {block.name}: direct routing keeps the virtual port {port}, "
                                   "as IPVS does")
            server["port"] = port
        return server

    def conntrack(self, role: str) -> dict[str, Any] | None:
        """syncdaemon = 1 replicated IPVS connections to the backup; for the kernel data
        plane that is conntrackd, on the private (or else the public) link."""
        sync = self.setting("syncdaemon")
        if sync is None or not flag(sync):
            return None
        peer_role = "backup" if role == "primary" else "primary"
        own = self.setting(f"{role}_private") or self.settings[role]
        peer = self.setting(f"{peer_role}_private") or self.settings[peer_role]
        iface = self.setting("syncd_iface")
        if iface is None:
            self.warn(sync.where, "syncdaemon = 1 without syncd_iface: conntrackd needs the interface of "
                                  f"{own.value}; eth0 assumed")
        for key in ("syncd_id",):
            entry = self.setting(key)
            if entry is not None:
                self.warn(entry.where, f"{key}: conntrackd sends to its one peer; not mapped")
        return {"interface": (iface.value if iface else "eth0").split(":", 1)[0],
                "address": own.value, "peer": peer.value}


def convert_file(path: str | Path, node: str) -> tuple[dict[str, Any], list[str]]:
    """lvs.cf -> (fulcrum configuration for `node` -- primary, backup or its address --
    as a dict, warnings). Raises PiranhaError (file:line) or ConfigError (key paths)."""
    path = Path(path)
    root = parse(path)
    importer = PiranhaImport(node)
    importer.read_globals(root)
    role, own, peer = importer.node_addresses()
    topology = importer.topology()
    for block in root.children:
        if block.kind == "virtual":
            importer.read_virtual(block, topology)
        else:
            importer.warn(block.where, f"{block.kind} {block.name}: failover services are not imported")
    if not importer.services:
        reasons = "".join(f"\n  {warning}" for warning in importer.warnings)
        raise PiranhaError(f"{path}: no active virtual server with servers: nothing to import{reasons}")
    cluster: dict[str, Any] = {"virtual_routers": importer.routers(role, own, peer)}
    conntrack = importer.conntrack(role)
    if conntrack is not None and topology in ("nat", "fullnat"):
        cluster["conntrack"] = conntrack
    data: dict[str, Any] = {"services": importer.services, "pools": importer.pools, "cluster": cluster}
    load_dict(data)
    return data, importer.warnings
