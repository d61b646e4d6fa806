"""Heartbeat v1 (ha.cf + haresources), read into the one model for one node.

    fulcrum import heartbeat /etc/ha.d/ha.cf /etc/ha.d/haresources -o fulcrum.toml --node lb0

Each haresources line (a resource group with its preferred node) becomes a VRRP virtual
router: its IP resources are the VIPs, the preferred node gets the higher priority. The
timers map onto VRRP (deadtime -> Master_Down_Interval, RFC 5798 §6.1), auto_failback onto
preempt, ucast onto unicast peers, ping nodes with ipfail onto tracked ping targets. Other
resources are kept as managed commands (the group's scripts started on becoming master and
stopped in reverse order otherwise), except a `pen` whose command line is found in its
script: that becomes fulcrum services. Nothing is dropped silently. docs/migration.md has
the mapping tables."""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fulcrum.config.errors import ConfigError
from fulcrum.config.load import load_dict

PREFERRED_PRIORITY = 150  # the haresources owner of a group
OTHER_PRIORITY = 100
# ipfail: the node that sees fewer ping nodes gives the resources up. Each lost target
# lowers the priority below the other node's, so a node only loses the VIP to a peer that
# still sees more targets (both losing them changes nothing, as with ipfail).
PING_WEIGHT = -(PREFERRED_PRIORITY - OTHER_PRIORITY + 10)
DEFAULT_KEEPALIVE = 2.0
FIRST_VRID = 1
IP_RESOURCES = {"IPaddr", "IPaddr2", "IPv6addr"}


class HeartbeatError(ValueError):
    """A file Heartbeat would not read, or a node it does not list: `file:line: reason`."""


@dataclass
class Line:
    words: list[str]
    where: str


def read_lines(path: Path) -> list[Line]:
    """Directive lines: `#` comments, a trailing `\\` continues the line (haresources)."""
    lines: list[Line] = []
    pending, start = "", 0
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        text = raw.split("#", 1)[0].rstrip()
        if not pending:
            start = number
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        text, pending = pending + text, ""
        if text.strip():
            lines.append(Line(text.split(), f"{path}:{start}"))
    return lines


def heartbeat_time(line: Line) -> float:
    """Heartbeat's time syntax: seconds, or a number with `ms`/`s`/`us`."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|us)?", line.words[1] if len(line.words) > 1 else "")
    if not match:
        raise HeartbeatError(f"{line.where}: {line.words[0]} needs a time such as 2, 500ms or 1.5s")
    scale = {"ms": 0.001, "us": 0.000001}.get(match.group(2) or "s", 1.0)
    return float(match.group(1)) * scale


def advert_interval(deadtime: float, lowest_priority: int) -> float:
    """The advert interval whose Master_Down_Interval (3 * Adv + Skew_Time, with
    Skew_Time = (256 - Priority) * Adv / 256, RFC 5798 §6.1) on the lower-priority node is
    at most `deadtime`: that node declares the master dead when Heartbeat would have."""
    factor = 3 + (256 - lowest_priority) / 256
    centis = int(deadtime * 100 / factor)  # rounded down: never slower than deadtime
    return min(max(centis, 1), 4095) / 100


def local_addresses() -> set[str]:
    """This machine's addresses, to tell its own ucast line from its peer's."""
    try:
        from pyroute2 import IPRoute  # type: ignore[import-untyped]

        with IPRoute() as ipr:
            return {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr()}
    except Exception:  # no netlink (a container, another OS): fall back to the resolver
        try:
            return {str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None)}
        except OSError:
            return set()


SHELL_OPERATORS = {";", ";;", "&", "&&", "|", "||", ">", ">>", "<", "2>", "2>&1", ")"}


def shell_words(words: list[str]) -> list[str]:
    """A command's arguments up to the end of the shell command (`;;`, `&&`, `>` ...)."""
    out = []
    for word in words:
        if word in SHELL_OPERATORS or word.startswith((">", "2>")):
            break
        if word.endswith(";"):
            out.append(word.rstrip(";"))
            break
        out.append(word)
    return out


@dataclass
class HaCf:
    nodes: list[str] = field(default_factory=list)
    keepalive: float | None = None
    deadtime: float | None = None
    deadtime_where: str = "ha.cf"
    ucast: list[tuple[str, str, str]] = field(default_factory=list)  # (dev, address, where)
    link_devices: list[str] = field(default_factory=list)  # bcast/mcast/ucast interfaces
    ping: list[tuple[str, str]] = field(default_factory=list)  # (address, where)
    ipfail: bool = False
    auto_failback: bool = True


class HeartbeatImport:
    def __init__(self, node: str, interface: str | None, resource_dirs: list[str],
                 local: set[str] | None = None):
        self.node = node
        self.interface = interface
        self.resource_dirs = resource_dirs
        self.local = local
        self.warnings: list[str] = []
        self.ha = HaCf()
        self.extra: dict[str, Any] = {}  # services/pools/... from a pen command line

    def warn(self, where: str, message: str) -> None:
        self.warnings.append(f"{where}: {message}")

    # -- ha.cf --------------------------------------------------------------------------

    def read_ha_cf(self, lines: list[Line], source: str) -> None:
        self.source = source
        ha = self.ha
        for line in lines:
            key, args = line.words[0], line.words[1:]
            if key == "node":
                ha.nodes += args
            elif key == "keepalive":
                ha.keepalive = heartbeat_time(line)
            elif key == "deadtime":
                ha.deadtime = heartbeat_time(line)
                ha.deadtime_where = line.where
            elif key == "warntime":
                self.warn(line.where, "warntime: fulcrum logs no late-advert warning; not mapped")
            elif key == "initdead":
                self.warn(line.where, "initdead: fulcrum has no separate start-up dead time: a starting node "
                                      "waits one Master_Down_Interval (about deadtime) before it takes over")
            elif key == "udpport":
                self.warn(line.where, "udpport: VRRP is IP protocol 112, it uses no UDP port; not mapped")
            elif key == "ucast" and len(args) == 2:
                ha.ucast.append((args[0], args[1], line.where))
                ha.link_devices.append(args[0])
            elif key in ("bcast", "mcast") and args:
                ha.link_devices.append(args[0])
                if key == "mcast" or len(args) > 1:
                    self.warn(line.where, f"{key}: VRRP multicasts to 224.0.0.18 (ff02::12) on the interface; "
                                          "the group, port and TTL given here are not mapped")
            elif key == "ping":
                ha.ping += [(address, line.where) for address in args]
            elif key == "ping_group" and len(args) >= 2:
                ha.ping += [(address, line.where) for address in args[1:]]
                self.warn(line.where, f"ping_group {args[0]}: each member is tracked on its own "
                                      "(Heartbeat counts the group up while any member answers)")
            elif key == "respawn" and len(args) >= 2 and os.path.basename(args[1]) == "ipfail":
                ha.ipfail = True
            elif key == "respawn":
                self.warn(line.where, f"respawn {' '.join(args)}: fulcrum does not supervise programs; "
                                      "run it as a systemd service")
            elif key == "auto_failback" and args:
                value = args[0].lower()
                ha.auto_failback = value != "off"
                if value == "legacy":
                    self.warn(line.where, "auto_failback legacy: mapped as on (preempt)")
            else:
                self.warn(line.where, f"{' '.join(line.words)}: not mapped")
        if self.node not in ha.nodes:
            raise HeartbeatError(f"{self.source}: --node {self.node}: not a node of ha.cf (nodes: {', '.join(ha.nodes) or 'none'})")
        if len(ha.nodes) > 2:
            self.warn(self.source, f"{len(ha.nodes)} nodes: the preferred node of each group gets priority "
                               f"{PREFERRED_PRIORITY}, every other node {OTHER_PRIORITY}")

    def timers(self) -> dict[str, Any]:
        ha = self.ha
        if ha.deadtime is None:
            keepalive = ha.keepalive or DEFAULT_KEEPALIVE
            return {"advert_interval": f"{min(max(round(keepalive * 100), 1), 4095) / 100:g}s"}
        interval = advert_interval(ha.deadtime, OTHER_PRIORITY)
        if ha.keepalive is not None and abs(interval - ha.keepalive) > 0.005:
            self.warn(ha.deadtime_where, f"keepalive {ha.keepalive:g}s, deadtime {ha.deadtime:g}s: adverts every "
                               f"{interval:g}s, so a backup declares the master dead after 3 adverts plus skew "
                               f"= about {ha.deadtime:g}s, as Heartbeat did")
        return {"advert_interval": f"{interval:g}s"}

    def unicast(self) -> dict[str, Any]:
        """Each node's ha.cf may list its own address too; Heartbeat ignores it."""
        entries = self.ha.ucast
        if not entries:
            return {}
        addresses = [address for _, address, _ in entries]
        if len(addresses) == 1:
            return {"unicast_peers": addresses}
        local = self.local if self.local is not None else local_addresses()
        own = [a for a in addresses if a in local]
        peers = [a for a in addresses if a not in local]
        if len(own) == 1 and peers:
            return {"unicast_src": own[0], "unicast_peers": peers}
        self.warn(entries[0][2], f"ucast lists {', '.join(addresses)}; none is an address of this machine, so "
                                 "all are unicast peers: remove this node's own address from unicast_peers")
        return {"unicast_peers": addresses}

    # -- haresources ----------------------------------------------------------------------

    def read_haresources(self, lines: list[Line]) -> dict[str, Any]:
        routers: dict[str, Any] = {}
        base = {**self.timers(), "preempt": self.ha.auto_failback, **self.unicast()}
        if self.ha.ping and not self.ha.ipfail:
            self.warn(self.ha.ping[0][1], "ping nodes without `respawn hacluster ipfail` only report to "
                                          "Heartbeat and move nothing: not tracked")
        for index, line in enumerate(lines):
            owner, resources = line.words[0], line.words[1:]
            if owner not in self.ha.nodes:
                self.warn(line.where, f"{owner} is not a node of ha.cf")
            vips: list[tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, str | None]] = []
            commands: list[str] = []
            for resource in resources:
                self.resource(line, resource, vips, commands)
            if not vips:
                self.warn(line.where, f"resource group of {owner} has no IP address: a VRRP router needs one, "
                                      "left out")
                continue
            priority = PREFERRED_PRIORITY if owner == self.node else OTHER_PRIORITY
            interface = self.pick_interface(line, vips)
            router: dict[str, Any] = {"vrid": FIRST_VRID + index, "interface": interface,
                                      "priority": priority, **base}
            if self.ha.ipfail and self.ha.ping:
                router["track"] = {"ping": [{"target": target, "weight": PING_WEIGHT} for target, _ in self.ha.ping]}
                if not self.ha.auto_failback and index == 0:
                    self.warn(self.ha.ping[0][1], "ipfail with auto_failback off: a master that loses ping nodes "
                                                  "only lowers its priority, and without preempt the peer does not "
                                                  "take over until the master fails (ipfail would move the resources)")
            if commands:
                router["notify"] = {"on_master": [f"{c} start" for c in commands],
                                    "on_backup": [f"{c} stop" for c in reversed(commands)],
                                    "on_fault": [f"{c} stop" for c in reversed(commands)],
                                    "on_stop": [f"{c} stop" for c in reversed(commands)]}
            self.add_router(routers, f"group{index + 1}", router, vips, line)
        return routers

    def add_router(self, routers: dict[str, Any], name: str, router: dict[str, Any],
                   vips: list[tuple[Any, str | None]], line: Line) -> None:
        """One router per address family (RFC 5798 §1), with the same vrid."""
        families = sorted({vip.version for vip, _ in vips})
        for family in families:
            entry = dict(router, vips=[str(vip) for vip, _ in vips if vip.version == family])
            peers = entry.get("unicast_peers", [])
            if peers and any(ipaddress.ip_address(p).version != family for p in peers):
                entry.pop("unicast_peers")
                entry.pop("unicast_src", None)
                self.warn(line.where, f"the ucast peers are not IPv{family}: the IPv{family} addresses use multicast")
            routers[name if family == families[0] else f"{name}_v{family}"] = entry

    def pick_interface(self, line: Line, vips: list[tuple[Any, str | None]]) -> str:
        named = [dev for _, dev in vips if dev]
        if len(set(named)) > 1:
            self.warn(line.where, f"addresses on {', '.join(sorted(set(named)))}: a virtual router has one "
                                  f"interface, {named[0]} is used for all")
        if named:
            return named[0]
        if self.interface:
            return self.interface
        if self.ha.link_devices:
            device = self.ha.link_devices[0]
            self.warn(line.where, f"no interface for the addresses (Heartbeat finds it from the routes): "
                                  f"{device}, the heartbeat link's, assumed; pass --interface to choose")
            return device
        raise HeartbeatError(f"{line.where}: no interface for the addresses: pass --interface")

    def resource(self, line: Line, resource: str, vips: list[tuple[Any, str | None]], commands: list[str]) -> None:
        name, *args = resource.split("::")
        if name in IP_RESOURCES:  # the rest is one spec: an IPv6 address has its own "::"
            self.ip_resource(line, resource, resource.partition("::")[2], vips)
            return
        if re.fullmatch(r"[\d.]+(/.*)?|[0-9a-fA-F]*:[0-9a-fA-F:.]*(/.*)?", resource):
            self.ip_resource(line, resource, resource, vips)
            return
        if name == "pen" and self.pen_service(line, args):
            return
        script = self.find_script(name)
        if script is None:
            script = f"/etc/ha.d/resource.d/{name}" if args else f"/etc/init.d/{name}"
            self.warn(line.where, f"resource {name}: no script found in {', '.join(self.resource_dirs)}: "
                                  f"{script} assumed")
        commands.append(" ".join(shlex.quote(word) for word in [script, *args]))
        if name == "pen":
            self.warn(line.where, "resource pen: kept as a managed command (started on becoming master). "
                                  "To let fulcrum do pen's job, run `fulcrum pen ARGS` with pen's own arguments, "
                                  "or put them in the script where this import can read them")
        elif name in ("httpd", "apache", "apache2"):
            self.warn(line.where, f"resource {name}: kept as a managed command. If Apache balances with "
                                  "mod_proxy_balancer, convert it: `fulcrum import apache httpd.conf -o ...`")
        else:
            self.warn(line.where, f"resource {resource}: kept as a managed command: `{script} start` on "
                                  "becoming master, `stop` otherwise")

    def ip_resource(self, line: Line, resource: str, spec: str, vips: list[tuple[Any, str | None]]) -> None:
        """IPaddr::198.18.0.20[/24[/eth0[/broadcast]]], or the address alone."""
        parts = spec.split("/")
        text, rest = parts[0], parts[1:]
        prefix = rest[0] if rest and rest[0].isdigit() else None
        rest = rest[1:] if prefix is not None else rest
        device = rest[0] if rest else None
        if len(rest) > 1:
            self.warn(line.where, f"{resource}: {'/'.join(rest[1:])} (broadcast, label) is not mapped")
        try:
            vip = ipaddress.ip_interface(f"{text}/{prefix}" if prefix else text)
        except ValueError:
            self.warn(line.where, f"{resource}: {text!r} is not an address: not mapped")
            return
        vips.append((vip, device))

    def find_script(self, name: str) -> str | None:
        for directory in self.resource_dirs:
            path = Path(directory) / name
            if path.is_file():
                return str(path)
        return None

    def pen_service(self, line: Line, args: list[str]) -> bool:
        """A `pen` resource whose script holds pen's command line becomes fulcrum services."""
        script = self.find_script("pen")
        if script is None:
            return False
        from fulcrum.importers.pen import parse_pen_argv

        for number, raw in enumerate(Path(script).read_text(errors="replace").splitlines(), 1):
            if raw.lstrip().startswith("#"):
                continue
            try:
                words = shlex.split(raw, comments=True)
            except ValueError:
                continue
            starts = [i for i, word in enumerate(words) if os.path.basename(word) == "pen" and i + 1 < len(words)]
            for start in starts:
                try:
                    invocation = parse_pen_argv(shell_words(words[start + 1:]))
                except (ConfigError, ValueError, SystemExit):
                    continue
                where = f"{script}:{number}"
                self.extra = invocation.config.model_dump(mode="json", exclude_none=True, exclude_defaults=True,
                                                         exclude={"cluster"})
                for notice in invocation.notices:
                    self.warn(where, f"pen: {notice}")
                self.warn(line.where, f"resource pen: its command line ({where}) became fulcrum services; "
                                      "fulcrum serves them on every node, on the VIPs when this node is master")
                return True
        return False


def convert_files(ha_cf: str | Path, haresources: str | Path, node: str, interface: str | None = None,
                  resource_dirs: list[str] | None = None,
                  local: set[str] | None = None) -> tuple[dict[str, Any], list[str]]:
    """ha.cf + haresources -> (fulcrum configuration for `node` as a dict, warnings).
    Resource scripts are looked for in `resource_dirs` (default: resource.d beside ha.cf,
    then /etc/init.d, as Heartbeat does). Raises HeartbeatError or ConfigError."""
    ha_cf, haresources = Path(ha_cf), Path(haresources)
    dirs = resource_dirs or [str(ha_cf.parent / "resource.d"), "/etc/init.d"]
    importer = HeartbeatImport(node, interface, dirs, local)
    importer.read_ha_cf(read_lines(ha_cf), str(ha_cf))
    routers = importer.read_haresources(read_lines(haresources))
    if not routers:
        raise HeartbeatError(f"{haresources}: no resource group with an IP address: nothing to import")
    data: dict[str, Any] = {**importer.extra, "cluster": {"virtual_routers": routers}}
    load_dict(data)
    return data, importer.warnings
