"""keepalived.conf, read into the one model.

    fulcrum import keepalived /etc/keepalived/keepalived.conf -o fulcrum.toml

`vrrp_instance` blocks become `cluster.virtual_routers`; `virtual_server` blocks (with their
`real_server`s and checkers) become services and pools. Every keyword without a fulcrum
meaning is reported as a warning `file:line: ...`: nothing is dropped silently.
docs/migration.md has the mapping tables and the reasons behind each choice."""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fulcrum.config.errors import ConfigError
from fulcrum.config.load import load_dict
from fulcrum.config.types import join_host_port
from fulcrum.importers.keepalived_syntax import KeepalivedSyntaxError, Statement, parse_file

# keepalived's own defaults (keepalived.conf(5), keepalived 2.2)
DEFAULT_PRIORITY = 100
OWNER_PRIORITY = 255  # what keepalived gives `state MASTER` without a priority
DEFAULT_DELAY_LOOP = 60.0
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_PERSISTENCE = 360.0  # `persistence_timeout` without a value
# IPVS persistence has no size limit; pen's 2048 clients would forget most of a busy site.
PERSISTENCE_TABLE_SIZE = 65536
IPVS_SCHEDULERS = {"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh"}
TOPOLOGIES = {"NAT": "nat", "DR": "dsr"}
CHECKERS = {"TCP_CHECK": "tcp", "HTTP_GET": "http", "SSL_GET": "https", "MISC_CHECK": "script"}
# virtual_ipaddress options that take a value (ip-address(8) words); the others are flags
VALUED_ADDRESS_OPTIONS = {"dev", "label", "scope", "brd", "broadcast", "peer", "preferred_lft", "track_group"}


# -- conversion --------------------------------------------------------------------


def seconds(statement: Statement, default: float | None = None) -> float:
    if not statement.args:
        if default is not None:
            return default
        raise KeepalivedSyntaxError(f"{statement.where}: {statement.keyword} needs a number of seconds")
    try:
        value = float(statement.args[0])
    except ValueError:
        raise KeepalivedSyntaxError(f"{statement.where}: {statement.keyword} {statement.args[0]!r} is not a number") from None
    if value < 0:
        raise KeepalivedSyntaxError(f"{statement.where}: {statement.keyword} must not be negative")
    return value


def integer(statement: Statement) -> int:
    if not statement.args or not re.fullmatch(r"-?\d+", statement.args[0]):
        raise KeepalivedSyntaxError(f"{statement.where}: {statement.keyword} needs a whole number")
    return int(statement.args[0])


def duration(value: float) -> str:
    return f"{value:g}s"


def host_port(address: str, port: str | int) -> str:
    return join_host_port(address.strip("[]"), port)


@dataclass
class Checker:
    kind: str
    settings: dict[str, Any] = field(default_factory=dict)


class KeepalivedImport:
    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.routers: dict[str, dict[str, Any]] = {}
        self.services: dict[str, dict[str, Any]] = {}
        self.pools: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, list[Statement]] = {}
        self.announce: dict[str, Any] = {}  # global garp settings, instance settings win
        self.vrrp_version = 2  # keepalived's default for IPv4 instances (IPv6 ones are always 3)
        self.topology_lines: dict[str, tuple[str, str]] = {}  # service -> (where, lb_kind)

    def warn(self, where: str, message: str) -> None:
        self.warnings.append(f"{where}: {message}")

    def unmapped(self, statement: Statement, context: str = "") -> None:
        text = " ".join(statement.words)
        self.warn(statement.where, f"{text}{' (' + context + ')' if context else ''}: not mapped")

    # -- top level ---------------------------------------------------------------------

    def read(self, statements: list[Statement]) -> None:
        # groups first: a virtual_server may name a group defined further down
        for s in statements:
            if s.keyword == "virtual_server_group" and s.children is not None and s.args:
                self.groups[s.args[0]] = s.children
        for s in statements:
            if s.keyword == "global_defs" and s.children is not None:
                self.read_globals(s.children)
        for s in statements:
            if s.keyword == "vrrp_instance" and s.children is not None and s.args:
                self.read_instance(s.args[0], s)
            elif s.keyword == "virtual_server" and s.children is not None:
                self.read_virtual_server(s)
            elif s.keyword in ("global_defs", "virtual_server_group"):
                continue
            elif s.keyword == "vrrp_sync_group":
                self.warn(s.where, f"vrrp_sync_group {' '.join(s.args)}: fulcrum's virtual routers fail over "
                                   "independently; give them the same priorities and tracking to keep them together")
            elif s.keyword == "vrrp_script":
                self.warn(s.where, f"vrrp_script {' '.join(s.args)}: fulcrum does not run tracking scripts; "
                                   "track a pool (track.pools) or a ping target instead")
            elif s.keyword.startswith("@") or s.keyword.startswith("$"):
                self.warn(s.where, f"{' '.join(s.words)}: conditional configuration and variables are not "
                                   "mapped: expand them for this node first")
            else:
                self.unmapped(s)

    def read_globals(self, statements: list[Statement]) -> None:
        for s in statements:
            if s.keyword == "vrrp_version":
                self.vrrp_version = integer(s)
            elif s.keyword == "vrrp_garp_master_repeat":
                self.announce["repeat"] = integer(s)
            elif s.keyword == "vrrp_garp_master_delay":
                self.announce["delay"] = duration(seconds(s))
            elif s.keyword == "vrrp_garp_master_refresh":
                self.announce["refresh"] = duration(seconds(s))
            elif s.keyword == "vrrp_garp_interval":
                self.announce["interval"] = duration(seconds(s))
            else:
                self.unmapped(s, "global_defs")

    # -- vrrp_instance -----------------------------------------------------------------

    def read_instance(self, name: str, block: Statement) -> None:
        assert block.children is not None
        router: dict[str, Any] = {}
        state: str | None = None
        version = self.vrrp_version
        vips: list[tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, str]] = []
        announce = dict(self.announce)
        track_interfaces: list[dict[str, Any]] = []
        notify: dict[str, list[str]] = {}
        advert: Statement | None = None
        authentication: Statement | None = None
        for s in block.children:
            key = s.keyword
            if key == "state":
                state = (s.args[:1] or [""])[0].upper()
            elif key == "interface":
                router["interface"] = s.args[0]
            elif key == "virtual_router_id":
                router["vrid"] = integer(s)
            elif key == "priority":
                router["priority"] = integer(s)
            elif key == "advert_int":
                advert = s  # its unit depends on the version, which may come later
            elif key == "version":
                version = integer(s)
            elif key == "nopreempt":
                router["preempt"] = False
            elif key == "preempt":
                router["preempt"] = True
            elif key == "preempt_delay":
                router["preempt_delay"] = duration(seconds(s))
            elif key == "accept":
                router["accept"] = True
            elif key == "no_accept":
                router["accept"] = False
            elif key == "unicast_src_ip":
                router["unicast_src"] = s.args[0]
            elif key == "unicast_peer" and s.children is not None:
                router["unicast_peers"] = self.peers(s.children)
            elif key in ("virtual_ipaddress", "virtual_ipaddress_excluded") and s.children is not None:
                vips += self.addresses(s.children, block)
            elif key == "track_interface" and s.children is not None:
                track_interfaces += self.track_interfaces(s.children, router)
            elif key in ("notify_master", "notify_backup", "notify_fault", "notify_stop"):
                notify.setdefault("on_" + key.removeprefix("notify_"), []).append(self.hook(s))
            elif key == "notify":
                self.generic_notify(s, name, notify)
            elif key == "garp_master_repeat":
                announce["repeat"] = integer(s)
            elif key == "garp_master_delay":
                announce["delay"] = duration(seconds(s))
            elif key == "garp_master_refresh":
                announce["refresh"] = duration(seconds(s))
            elif key == "garp_interval":
                announce["interval"] = duration(seconds(s))
            elif key == "authentication" and s.children is not None:
                authentication = s
            elif key == "track_script":
                self.warn(s.where, "track_script: fulcrum does not run tracking scripts; "
                                   "track a pool (track.pools) or a ping target instead")
            else:
                self.unmapped(s, f"vrrp_instance {name}")
        v2 = version == 2 and bool(vips) and vips[0][0].version == 4
        if advert is not None:
            router["advert_interval"] = self.advert_interval(advert, v2)
        if authentication is not None and not self.authentication(authentication, name, router, v2):
            return
        self.finish_instance(name, block, router, state, version, vips, announce, track_interfaces, notify)

    def finish_instance(self, name: str, block: Statement, router: dict[str, Any], state: str | None,
                        version: int, vips: list[tuple[Any, str]], announce: dict[str, Any],
                        track_interfaces: list[dict[str, Any]], notify: dict[str, list[str]]) -> None:
        if "interface" not in router or "vrid" not in router:
            self.warn(block.where, f"vrrp_instance {name} has no interface or virtual_router_id: left out")
            return
        if not vips:
            self.warn(block.where, f"vrrp_instance {name} has no virtual_ipaddress: left out")
            return
        if "unicast_src" in router and not router.get("unicast_peers"):
            self.warn(block.where, f"vrrp_instance {name}: unicast_src_ip without unicast_peer: multicast used, "
                                   "as keepalived does")
            del router["unicast_src"]
        if "priority" not in router:
            # keepalived: `state MASTER` without a priority makes the instance the address owner
            router["priority"] = OWNER_PRIORITY if state == "MASTER" else DEFAULT_PRIORITY
        if state == "MASTER" and router["priority"] != OWNER_PRIORITY:
            self.warn(block.where, f"vrrp_instance {name}: state MASTER only changes keepalived's first "
                                   "seconds; fulcrum elects by priority from the start (RFC 5798 §6.4.1)")
        if router["priority"] == OWNER_PRIORITY and any(t["weight"] for t in track_interfaces):
            self.warn(block.where, f"vrrp_instance {name}: priority 255 is never lowered (as in keepalived): "
                                   "tracked interfaces put it in fault state instead")
            for tracked in track_interfaces:
                tracked["weight"] = 0
        if track_interfaces:
            router["track"] = {"interfaces": track_interfaces}
        if notify:
            router["notify"] = notify
        if announce:
            router["announce"] = announce
        by_family: dict[int, list[str]] = {}
        for address, where in vips:
            listed = by_family.setdefault(address.version, [])
            if str(address) in listed:
                self.warn(where, f"{address} is listed twice: added once")
            else:
                listed.append(str(address))
        first_family = vips[0][0].version
        peers = router.get("unicast_peers", [])
        for family, addresses in by_family.items():
            entry = dict(router, vips=addresses)
            # The version keepalived speaks: 2 for IPv4 unless `vrrp_version 3` or `version 3`
            # (keepalived.conf(5)); IPv6 is always 3 (RFC 3768 is IPv4 only).
            if family == 4 and version == 2:
                entry["version"] = 2
            else:
                entry.pop("authentication", None)
            router_name = name
            if family != first_family:
                router_name = f"{name}_v{family}"
                self.warn(block.where, f"vrrp_instance {name}: its IPv{family} addresses form virtual router "
                                       f"{router_name!r} with the same vrid (one family per advert, RFC 5798 §1)")
            if peers and any(ipaddress.ip_address(p).version != family for p in peers):
                entry.pop("unicast_peers", None)
                entry.pop("unicast_src", None)
                if family != first_family:
                    self.warn(block.where, f"{router_name}: the unicast peers are IPv{first_family}: multicast used")
            self.routers[router_name] = entry

    def advert_interval(self, s: Statement, v2: bool) -> str:
        value = seconds(s)
        if v2:
            # RFC 3768 §5.3.7: whole seconds, 1..255
            whole = min(max(round(value), 1), 255)
            if whole != value:
                self.warn(s.where, f"advert_int {s.args[0]}: VRRPv2 counts whole seconds from 1 to 255: "
                                   f"{whole}s used")
            return duration(whole)
        # RFC 5798 §5.2.7: centiseconds, 1..4095
        centis = min(max(round(value * 100), 1), 4095)
        if abs(centis - value * 100) > 1e-6:
            self.warn(s.where, f"advert_int {s.args[0]}: VRRPv3 counts centiseconds from 0.01 to 40.95: {centis / 100:g}s used")
        return duration(centis / 100)

    def authentication(self, block: Statement, name: str, router: dict[str, Any], v2: bool) -> bool:
        """`authentication { auth_type PASS; auth_pass SECRET }`: VRRPv2's simple password.
        False when the instance cannot be joined at all (AH)."""
        assert block.children is not None
        settings = {s.keyword: s for s in block.children}
        kind = settings.get("auth_type")
        password = settings.get("auth_pass")
        kind_name = (kind.args[:1] or [""])[0].upper() if kind else ""
        if not v2:
            self.warn(block.where, "authentication: VRRPv3 (RFC 5798) has no authentication and keepalived "
                                   "ignores it here: not mapped")
            return True
        if kind_name == "AH":
            self.warn(kind.where if kind else block.where,
                      f"vrrp_instance {name}: auth_type AH (IPsec AH) is not supported by fulcrum, which could "
                      "not join this virtual router: left out; use auth_type PASS or none on the keepalived "
                      "nodes first")
            return False
        if kind_name != "PASS" or password is None or not password.args:
            self.warn(block.where, "authentication without auth_type PASS and an auth_pass: not mapped "
                                   "(keepalived sends no authentication then)")
            return True
        secret = password.args[0]
        if len(secret.encode()) > 8:
            self.warn(password.where, "auth_pass is longer than 8 bytes: keepalived sends its first 8, "
                                      "so fulcrum uses those")
            secret = secret.encode()[:8].decode(errors="ignore")
        for s in block.children:
            if s.keyword not in ("auth_type", "auth_pass"):
                self.unmapped(s, "authentication")
        router["authentication"] = {"type": "PASS", "password": secret}
        return True

    def peers(self, children: list[Statement]) -> list[str]:
        peers = []
        for s in children:
            peers.append(s.words[0])
            if s.args:
                self.warn(s.where, f"unicast_peer {s.words[0]}: {' '.join(s.args)} is not mapped")
        return peers

    def addresses(self, children: list[Statement], block: Statement) -> list[tuple[Any, str]]:
        """`<IP>[/<MASK>] [dev X] [label X] [scope X] ...`; without a mask a host address."""
        out = []
        interface = next((s.args[0] for s in block.children or [] if s.keyword == "interface" and s.args), None)
        for s in children:
            try:
                address = ipaddress.ip_interface(s.words[0])
            except ValueError:
                self.warn(s.where, f"{s.words[0]!r} is not an address: not mapped")
                continue
            options = list(s.args)
            while options:
                option = options.pop(0)
                value = options.pop(0) if option in VALUED_ADDRESS_OPTIONS and options else ""
                if option == "dev" and value == interface:
                    continue
                if option == "dev":
                    self.warn(s.where, f"{s.words[0]} dev {value}: fulcrum adds a router's addresses on its "
                                       f"interface ({interface}): not mapped")
                elif option == "label":
                    self.warn(s.where, f"{s.words[0]} label {value}: interface alias labels are not used by fulcrum")
                else:
                    self.warn(s.where, f"{s.words[0]} {option} {value}".rstrip() + ": not mapped")
            out.append((address, s.where))
        return out

    def track_interfaces(self, children: list[Statement], router: dict[str, Any]) -> list[dict[str, Any]]:
        tracked = []
        for s in children:
            entry: dict[str, Any] = {"name": s.words[0], "weight": 0}
            options = s.args
            if options[:1] == ["weight"] and len(options) >= 2:
                entry["weight"] = int(options[1])
                options = options[2:]
            if options:
                self.warn(s.where, f"track_interface {s.words[0]}: {' '.join(options)} is not mapped")
            tracked.append(entry)
        return tracked

    def hook(self, s: Statement) -> str:
        if len(s.args) > 1:
            self.warn(s.where, f"{s.keyword}: running as user {' '.join(s.args[1:])} is not mapped: "
                               "hooks run as fulcrum's user")
        return s.args[0] if s.args else ""

    def generic_notify(self, s: Statement, name: str, notify: dict[str, list[str]]) -> None:
        """keepalived's `notify SCRIPT` runs `SCRIPT INSTANCE NAME STATE PRIORITY` on every change."""
        script = self.hook(s)
        for state in ("MASTER", "BACKUP", "FAULT", "STOP"):
            command = f"{script} INSTANCE {shlex.quote(name)} {state}"
            notify.setdefault("on_" + state.lower(), []).append(command)
        self.warn(s.where, f"notify {script}: run with INSTANCE {name} and the new state; "
                           "keepalived's fourth argument (the priority) is not passed")

    # -- virtual_server ----------------------------------------------------------------

    def listen_addresses(self, s: Statement) -> list[str] | None:
        args = s.args
        if len(args) == 2 and args[0] != "fwmark" and args[0] != "group":
            return [host_port(args[0], args[1])]
        if args[:1] == ["group"] and len(args) == 2:
            entries = self.groups.get(args[1])
            if entries is None:
                self.warn(s.where, f"virtual_server group {args[1]}: no such virtual_server_group: left out")
                return None
            listen = []
            for entry in entries:
                if len(entry.words) == 2 and entry.words[0] != "fwmark":
                    address, port = entry.words
                    listen += [host_port(a, port) for a in self.address_range(entry, address)]
                else:
                    self.warn(entry.where, f"virtual_server_group {args[1]}: {' '.join(entry.words)} is not mapped "
                                           "(fulcrum listens on addresses and ports, not firewall marks)")
            if listen:
                self.warn(s.where, f"virtual_server group {args[1]}: one service listening on each "
                                   "address of the group")
            return listen or None
        self.warn(s.where, f"virtual_server {' '.join(args)}: fulcrum listens on addresses and ports, "
                           "not firewall marks: left out")
        return None

    def address_range(self, s: Statement, text: str) -> list[str]:
        """`198.18.0.10-12` (the last byte ranges) as keepalived writes address ranges."""
        match = re.fullmatch(r"(\d+\.\d+\.\d+\.)(\d+)-(\d+)", text)
        if not match:
            return [text]
        first, last = int(match.group(2)), int(match.group(3))
        if not first <= last <= 255:
            raise KeepalivedSyntaxError(f"{s.where}: {text} is not an address range")
        return [f"{match.group(1)}{n}" for n in range(first, last + 1)]

    def read_virtual_server(self, block: Statement) -> None:
        assert block.children is not None
        listen = self.listen_addresses(block)
        if listen is None:
            return
        label = "_".join(block.args).replace(".", "_").replace(":", "_").replace("-", "_")
        name = f"vs_{label}"
        service: dict[str, Any] = {"listen": listen, "pool": name, "mode": "tcp"}
        pool: dict[str, Any] = {"servers": []}
        health: dict[str, Any] = {}
        checkers: list[tuple[Statement, Checker]] = []
        delay_loop = DEFAULT_DELAY_LOOP
        protocol = ""
        for s in block.children:
            key = s.keyword
            if key in ("lb_algo", "lvs_sched"):
                self.scheduler(s, pool)
            elif key in ("lb_kind", "lvs_method"):
                kind = (s.args[:1] or [""])[0].upper()
                self.topology_lines[name] = (s.where, kind)
                if kind in TOPOLOGIES:
                    service["topology"] = TOPOLOGIES[kind]
                else:
                    self.warn(s.where, f"lb_kind {kind}: fulcrum has no IP-in-IP tunnel topology; "
                                       "the userspace proxy is used (the client IP is not preserved)")
            elif key == "persistence_timeout":
                expiry = seconds(s, DEFAULT_PERSISTENCE)
                pool["sticky"] = {"mode": "source", "expiry": duration(expiry), "table_size": PERSISTENCE_TABLE_SIZE}
            elif key == "protocol":
                protocol = (s.args[:1] or ["TCP"])[0].upper()
            elif key == "delay_loop":
                delay_loop = seconds(s)
            elif key == "virtualhost":
                health["host"] = s.args[0]
            elif key == "sorry_server" and len(s.args) >= 2:
                pool["emergency"] = {"address": s.args[0], "port": int(s.args[1])}
            elif key == "real_server" and s.children is not None:
                self.read_real_server(s, pool, checkers)
            else:
                self.unmapped(s, f"virtual_server {' '.join(block.args)}")
        if name not in self.topology_lines and "topology" not in service:
            # keepalived's default lb_kind is NAT
            service["topology"] = "nat"
            self.topology_lines[name] = (block.where, "NAT (keepalived's default)")
        pool.setdefault("scheduler", "wlc")  # keepalived's default lb_algo
        kernel = service.get("topology") in ("nat", "dsr")
        if kernel:
            self.kernel_service(block, service, pool)
        if not protocol:
            protocol = "TCP"
            self.warn(block.where, f"virtual_server {' '.join(block.args)} has no protocol: keepalived 2 uses UDP "
                                   "then; mapped as TCP (add `protocol TCP` or `protocol UDP`)")
        if protocol == "UDP" and kernel:
            service["protocol"] = "udp"
        elif protocol != "TCP":
            self.warn(block.where, f"virtual_server {' '.join(block.args)}: protocol {protocol}: fulcrum balances "
                                   "TCP, and UDP with lb_kind NAT or DR: left out")
            return
        if not pool["servers"]:
            self.warn(block.where, f"virtual_server {' '.join(block.args)} has no real_server: left out")
            return
        pool["health"] = self.health(checkers, delay_loop, health)
        self.services[name] = service
        self.pools[name] = pool

    def kernel_service(self, block: Statement, service: dict[str, Any], pool: dict[str, Any]) -> None:
        """IPVS's own terms for an LVS service fulcrum runs in the kernel: persistence is
        the service's, and the kernel has no connection counts for lc, wlc, ..."""
        from fulcrum.config.kernel import KERNEL_SCHEDULERS

        sticky = pool.pop("sticky", None)
        if sticky is not None:
            service["persistence"] = sticky["expiry"]
        if pool["scheduler"] not in KERNEL_SCHEDULERS:
            self.warn(block.where, f"virtual_server {' '.join(block.args)}: lb_algo {pool['scheduler']} needs "
                                   "live connection counts, which fulcrum's kernel topologies do not have: wrr "
                                   f"used (weights kept; the kernel runs {', '.join(KERNEL_SCHEDULERS)})")
            pool["scheduler"] = "wrr"

    def scheduler(self, s: Statement, pool: dict[str, Any]) -> None:
        algo = (s.args[:1] or [""])[0].lower()
        if algo in IPVS_SCHEDULERS:
            pool["scheduler"] = algo
        else:
            self.warn(s.where, f"lb_algo {algo}: not a scheduler fulcrum has: wlc (IPVS's default) used")
            pool["scheduler"] = "wlc"

    def read_real_server(self, block: Statement, pool: dict[str, Any], checkers: list[tuple[Statement, Checker]]) -> None:
        assert block.children is not None
        if len(block.args) != 2:
            self.warn(block.where, f"real_server {' '.join(block.args)}: needs an address and a port: left out")
            return
        server: dict[str, Any] = {"address": block.args[0], "port": int(block.args[1])}
        for s in block.children:
            key = s.keyword
            if key == "weight":
                server["weight"] = integer(s)
            elif key == "inhibit_on_failure":
                continue  # fulcrum's behaviour anyway: no new connections, established ones continue
            elif key == "uthreshold":
                server["max_connections"] = integer(s)
            elif key in CHECKERS and s.children is not None:
                checkers.append((s, self.checker(s)))
            elif key.endswith("_CHECK") or key.endswith("_GET"):
                self.warn(s.where, f"{key}: fulcrum has no such health check: a TCP connect check is used")
            else:
                self.unmapped(s, f"real_server {' '.join(block.args)}")
        pool["servers"].append(server)

    def checker(self, block: Statement) -> Checker:
        assert block.children is not None
        checker = Checker(CHECKERS[block.keyword])
        settings = checker.settings
        for s in block.children:
            key = s.keyword
            if key == "connect_port":
                settings["port"] = integer(s)
            elif key in ("connect_timeout", "misc_timeout"):
                settings["timeout"] = seconds(s)
            elif key in ("retry", "nb_get_retry"):
                settings["retry"] = integer(s)
            elif key == "delay_before_retry":
                settings["delay_before_retry"] = (s, seconds(s))
            elif key == "misc_path":
                settings["command"] = s.args[0] if s.args else ""
            elif key == "virtualhost":
                settings["host"] = s.args[0]
            elif key == "url" and s.children is not None:
                self.url(s, settings)
            else:
                self.unmapped(s, block.keyword)
        return checker

    def url(self, block: Statement, settings: dict[str, Any]) -> None:
        assert block.children is not None
        if "path" in settings:
            self.warn(block.where, "a second url block: fulcrum probes one path per pool: not mapped")
            return
        for s in block.children:
            if s.keyword == "path":
                settings["path"] = s.args[0]
            elif s.keyword == "status_code":
                settings["expect_status"] = [int(code) for code in s.args if code.isdigit()]
                if any(not code.isdigit() for code in s.args):
                    self.warn(s.where, f"status_code {' '.join(s.args)}: status ranges are not mapped")
            elif s.keyword == "regex":
                settings["expect_body"] = s.args[0]
            elif s.keyword == "digest":
                self.warn(s.where, "digest: fulcrum does not compare the body's MD5 digest; use expect_body "
                                   "(a regular expression) if the content matters")
            else:
                self.unmapped(s, "url")

    def health(self, checkers: list[tuple[Statement, Checker]], delay_loop: float, health: dict[str, Any]) -> dict[str, Any]:
        """keepalived checks each real server with its own checker; a fulcrum pool has one.
        The first checker decides; a real server with a different one is warned about."""
        if not checkers:
            health["kind"] = "none"  # keepalived without a checker never takes a server out
            return health
        first_block, first = checkers[0]
        for block, other in checkers[1:]:
            if other.kind != first.kind or other.settings.keys() != first.settings.keys():
                self.warn(block.where, f"{block.keyword} differs from the pool's first checker "
                                       f"({first_block.where}): the first is used for every server")
        settings = dict(first.settings)
        retry = settings.pop("retry", 1)
        delay = settings.pop("delay_before_retry", None)
        if delay is not None and delay[1] != delay_loop:
            self.warn(delay[0].where, "delay_before_retry: fulcrum probes at one interval (delay_loop); "
                                      f"a failing server is marked down after {retry + 1} failed probes")
        health.update(settings, kind=first.kind, interval=duration(delay_loop), rise=1, fall=retry + 1)
        timeout = settings.get("timeout", DEFAULT_CONNECT_TIMEOUT)
        if timeout > delay_loop:
            self.warn(first_block.where, f"connect_timeout {timeout:g}s is longer than delay_loop: "
                                         f"{delay_loop:g}s used")
            timeout = delay_loop
        health["timeout"] = duration(timeout)
        return health

    # -- the model -------------------------------------------------------------------

    def build(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.services:
            data["services"] = self.services
            data["pools"] = self.pools
        if self.routers:
            data["cluster"] = {"virtual_routers": self.routers}
        return data

    def validate(self, data: dict[str, Any]) -> None:
        """The one model decides. A kernel topology this build rejects becomes the userspace
        proxy, with a warning: an LVS user must know the client IP is no longer preserved."""
        try:
            load_dict(data)
            return
        except ConfigError as err:
            refused = {path.split(".")[1]: reason for path, reason in err.problems
                       if path.startswith("services.") and path.endswith(".topology")}
            if not refused or len(refused) != len(err.problems):
                raise
        for name, reason in refused.items():
            where, kind = self.topology_lines[name]
            self.warn(where, f"lb_kind {kind}: {reason}: the LVS topology was mapped to fulcrum's userspace "
                             "proxy (the client IP is then not preserved)")
            data["services"][name]["topology"] = "proxy"
            persistence = data["services"][name].pop("persistence", None)
            if persistence is not None:  # the proxy's form of IPVS persistence
                data["pools"][data["services"][name]["pool"]]["sticky"] = {
                    "mode": "source", "expiry": persistence, "table_size": PERSISTENCE_TABLE_SIZE}
        load_dict(data)


def convert(statements: list[Statement]) -> tuple[dict[str, Any], list[str]]:
    importer = KeepalivedImport()
    importer.read(statements)
    data = importer.build()
    if not data:
        # the warnings say why every block was left out: they are the message
        reasons = "".join(f"\n  {warning}" for warning in importer.warnings)
        raise KeepalivedSyntaxError("no vrrp_instance or virtual_server fulcrum can run: nothing to import" + reasons)
    importer.validate(data)
    return data, importer.warnings


def convert_file(path: str | Path) -> tuple[dict[str, Any], list[str]]:
    """keepalived.conf (and what it includes) -> (fulcrum configuration as a dict, warnings).
    Raises KeepalivedSyntaxError (file:line) or ConfigError (key paths)."""
    return convert(parse_file(path))
