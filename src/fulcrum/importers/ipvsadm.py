"""ipvsadm rules, read into the one model.

    ipvsadm -S -n > ipvs.rules          # or ipvsadm-save -n, /etc/ipvsadm.rules
    fulcrum import ipvsadm ipvs.rules -o fulcrum.toml

The file is what `ipvsadm-restore` reads: one ipvsadm command per line, without the
`ipvsadm` word (a line that starts with it, as in a shell script, is read too). The
commands are replayed in order, as ipvsadm-restore would (`-A` adds a virtual service,
`-E` edits it, `-D` deletes it, `-C` clears everything; `-a`/`-e`/`-d` the same for real
servers), and the resulting table becomes services and pools with a kernel topology:
masquerading (`-m`) is `nat`, gatewaying (`-g`, ipvsadm's default) is `dsr`. What fulcrum
cannot run (firewall-mark services, IP-in-IP tunnelling, SCTP, scheduler flags) is warned
with its line. docs/migration.md has the mapping table."""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fulcrum.config.kernel import KERNEL_SCHEDULERS  # the others need per-server connection counts
from fulcrum.config.load import load_dict
from fulcrum.config.types import join_host_port

DEFAULT_PERSISTENCE = 300  # ipvsadm -p without a timeout (ipvsadm(8))
DEFAULT_SCHEDULER = "wlc"  # ipvsadm without -s
FORWARDING = {"-m": "nat", "-g": "dsr", "-i": "tunnel"}
IPVS_SCHEDULERS = {"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh"}

# ipvsadm's options (ipvsadm(8)), long names as short ones; value: takes an argument
COMMANDS = {"-A": "-A", "--add-service": "-A", "-E": "-E", "--edit-service": "-E",
            "-D": "-D", "--delete-service": "-D", "-C": "-C", "--clear": "-C",
            "-a": "-a", "--add-server": "-a", "-e": "-e", "--edit-server": "-e",
            "-d": "-d", "--delete-server": "-d"}
OPTIONS = {"-t": ("-t", True), "--tcp-service": ("-t", True), "-u": ("-u", True), "--udp-service": ("-u", True),
           "--sctp-service": ("--sctp-service", True), "-f": ("-f", True), "--fwmark-service": ("-f", True),
           "-s": ("-s", True), "--scheduler": ("-s", True), "-p": ("-p", False), "--persistent": ("-p", False),
           "-M": ("-M", True), "--netmask": ("-M", True), "-b": ("-b", True), "--sched-flags": ("-b", True),
           "--pe": ("--pe", True), "-o": ("-o", False), "--ops": ("-o", False), "-6": ("-6", False),
           "--ipv6": ("-6", False), "-r": ("-r", True), "--real-server": ("-r", True),
           "-g": ("-g", False), "--gatewaying": ("-g", False), "-m": ("-m", False), "--masquerading": ("-m", False),
           "-i": ("-i", False), "--ipip": ("-i", False), "-w": ("-w", True), "--weight": ("-w", True),
           "-x": ("-x", True), "--u-threshold": ("-x", True), "-y": ("-y", True), "--l-threshold": ("-y", True),
           "--tun-type": ("--tun-type", True), "--tun-port": ("--tun-port", True),
           "--tun-nocsum": ("--tun-nocsum", False), "--tun-csum": ("--tun-csum", False),
           "--tun-remcsum": ("--tun-remcsum", False), "-n": ("-n", False), "--numeric": ("-n", False)}


class IpvsadmError(ValueError):
    """A line ipvsadm-restore would refuse: `file:line: reason`."""


@dataclass
class RealServer:
    address: str
    port: int
    method: str  # nat, dsr, tunnel
    weight: int
    upper: int
    lower: int
    where: str


@dataclass
class VirtualService:
    key: str  # "-t 192.0.2.10:80", "-f 1"
    protocol: str  # tcp, udp, sctp, fwmark
    address: str | None
    port: int | None
    scheduler: str
    persistence: int | None
    netmask: str | None
    where: str
    flags: list[str] = field(default_factory=list)  # -b, --pe, -o as written
    servers: dict[str, RealServer] = field(default_factory=dict)


@dataclass
class Rule:
    command: str
    options: dict[str, str | None]
    where: str


def read_rules(path: Path) -> list[Rule]:
    rules = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        where = f"{path}:{number}"
        try:
            words = shlex.split(raw, comments=True)
        except ValueError as err:
            raise IpvsadmError(f"{where}: {err}") from None
        if words and Path(words[0]).name == "ipvsadm":
            words = words[1:]
        if words:
            rules.append(parse_rule(words, where))
    return rules


def parse_rule(words: list[str], where: str) -> Rule:
    command: str | None = None
    options: dict[str, str | None] = {}
    i = 0
    while i < len(words):
        word = words[i]
        name, eq, inline = word.partition("=") if word.startswith("--") else (word, "", "")
        if name in COMMANDS:
            if command is not None:
                raise IpvsadmError(f"{where}: two commands on one line ({command} and {word})")
            command = COMMANDS[name]
        elif name in OPTIONS:
            option, takes_value = OPTIONS[name]
            value: str | None = None
            if takes_value:
                if eq:
                    value = inline
                elif i + 1 < len(words):
                    i += 1
                    value = words[i]
                else:
                    raise IpvsadmError(f"{where}: {word} needs a value")
            elif option == "-p" and (eq or (i + 1 < len(words) and words[i + 1].isdigit())):
                # -p takes an optional timeout (ipvsadm(8): -p [timeout])
                if eq:
                    value = inline
                else:
                    i += 1
                    value = words[i]
            options[option] = value
        else:
            raise IpvsadmError(f"{where}: {word!r} is not an ipvsadm option")
        i += 1
    if command is None:
        raise IpvsadmError(f"{where}: no command (-A, -E, -D, -C, -a, -e, -d) on this line")
    return Rule(command, options, where)


def whole(rule: Rule, option: str, low: int, high: int) -> int | None:
    value = rule.options.get(option)
    if value is None:
        return None
    if not re.fullmatch(r"\d+", value) or not low <= int(value) <= high:
        raise IpvsadmError(f"{rule.where}: {option} {value}: must be a whole number {low}..{high}")
    return int(value)


def address_port(rule: Rule, option: str, text: str) -> tuple[str, int]:
    """`192.0.2.10:80`, `[2001:db8::10]:80`; a real server may omit the port (then the
    service's, ipvsadm(8)) and a firewall-mark service's servers have port 0."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d+))?|([0-9.]+)(?::(\d+))?", text)
    if not match:
        raise IpvsadmError(f"{rule.where}: {option} {text}: expected ADDRESS:PORT or [IPv6]:PORT "
                           "(save the rules with -n: numeric addresses)")
    host, port = match.group(1) or match.group(3), match.group(2) or match.group(4)
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        raise IpvsadmError(f"{rule.where}: {option} {text}: {host!r} is not an IP address") from None
    if port is None and option != "-r":
        raise IpvsadmError(f"{rule.where}: {option} {text}: the port is missing")
    if port is not None and int(port) > 65535:
        raise IpvsadmError(f"{rule.where}: {option} {text}: port {port} is not 0..65535")
    return host, int(port or 0)


class IpvsadmImport:
    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.services: dict[str, VirtualService] = {}

    def warn(self, where: str, message: str) -> None:
        self.warnings.append(f"{where}: {message}")

    def service_key(self, rule: Rule) -> tuple[str, str, str | None, int | None]:
        given = [option for option in ("-t", "-u", "--sctp-service", "-f") if option in rule.options]
        if len(given) != 1:
            raise IpvsadmError(f"{rule.where}: {rule.command} needs exactly one of -t, -u or -f")
        option = given[0]
        text = rule.options[option] or ""
        if option == "-f":
            if not text.isdigit():
                raise IpvsadmError(f"{rule.where}: -f {text}: a firewall mark is a number")
            return f"-f {int(text)}", "fwmark", None, None
        host, port = address_port(rule, option, text)
        protocol = {"-t": "tcp", "-u": "udp"}.get(option, "sctp")
        return f"{option} {join_host_port(host, port)}", protocol, host, port

    def replay(self, rules: list[Rule]) -> None:
        for rule in rules:
            if rule.command == "-C":
                self.services.clear()
                continue
            key, protocol, host, port = self.service_key(rule)
            if rule.command in ("-A", "-E"):
                self.service(rule, key, protocol, host, port)
            elif rule.command == "-D":
                if self.services.pop(key, None) is None:
                    raise IpvsadmError(f"{rule.where}: -D {key}: no such service")
            else:
                self.server(rule, key)

    def service(self, rule: Rule, key: str, protocol: str, host: str | None, port: int | None) -> None:
        existing = self.services.get(key)
        if rule.command == "-A" and existing is not None:
            raise IpvsadmError(f"{rule.where}: -A {key}: service already exists (first at {existing.where})")
        if rule.command == "-E" and existing is None:
            raise IpvsadmError(f"{rule.where}: -E {key}: no such service")
        # -E, like -A, sets every attribute: what is not given takes ipvsadm's default
        scheduler = rule.options.get("-s") or DEFAULT_SCHEDULER
        if scheduler not in IPVS_SCHEDULERS:
            raise IpvsadmError(f"{rule.where}: -s {scheduler}: not an IPVS scheduler "
                               f"({', '.join(sorted(IPVS_SCHEDULERS))})")
        persistence = None
        if "-p" in rule.options:
            persistence = whole(rule, "-p", 1, 2**31) if rule.options["-p"] is not None else DEFAULT_PERSISTENCE
        flags = [f"{option} {rule.options[option] or ''}".strip() for option in ("-b", "--pe", "-o")
                 if option in rule.options]
        service = VirtualService(key, protocol, host, port, scheduler, persistence,
                                 rule.options.get("-M"), rule.where, flags)
        if existing is not None:
            service.servers = existing.servers
            service.where = existing.where
        self.services[key] = service

    def server(self, rule: Rule, key: str) -> None:
        service = self.services.get(key)
        if service is None:
            raise IpvsadmError(f"{rule.where}: {rule.command} {key}: no such service (add it with -A first)")
        if "-r" not in rule.options:
            raise IpvsadmError(f"{rule.where}: {rule.command} needs -r ADDRESS:PORT")
        host, port = address_port(rule, "-r", rule.options["-r"] or "")
        port = port or service.port or 0
        server_key = join_host_port(host, port)
        existing = service.servers.get(server_key)
        if rule.command == "-d":
            if service.servers.pop(server_key, None) is None:
                raise IpvsadmError(f"{rule.where}: -d {key} -r {server_key}: no such real server")
            return
        if rule.command == "-a" and existing is not None:
            raise IpvsadmError(f"{rule.where}: -a {key} -r {server_key}: real server already exists")
        if rule.command == "-e" and existing is None:
            raise IpvsadmError(f"{rule.where}: -e {key} -r {server_key}: no such real server")
        methods = [FORWARDING[option] for option in ("-m", "-g", "-i") if option in rule.options]
        if len(methods) > 1:
            raise IpvsadmError(f"{rule.where}: more than one forwarding method (-g, -m, -i)")
        # -e, like -a, sets every attribute: -g and weight 1 unless given (ipvsadm(8))
        method = methods[0] if methods else "dsr"
        weight = whole(rule, "-w", 0, 65535)
        upper = whole(rule, "-x", 0, 2**31)
        lower = whole(rule, "-y", 0, 2**31)
        for option in ("--tun-type", "--tun-port", "--tun-nocsum", "--tun-csum", "--tun-remcsum"):
            if option in rule.options:
                self.warn(rule.where, f"{option}: fulcrum has no IP-in-IP tunnel: not mapped")
        service.servers[server_key] = RealServer(
            host, port, method,
            1 if weight is None else weight, upper or 0, lower or 0,
            rule.where if existing is None else existing.where)

    # -- the model -------------------------------------------------------------------

    def build(self) -> dict[str, Any]:
        services: dict[str, Any] = {}
        pools: dict[str, Any] = {}
        for vs in self.services.values():
            if vs.protocol in ("fwmark", "sctp"):
                what = "firewall-mark services" if vs.protocol == "fwmark" else "SCTP"
                self.warn(vs.where, f"{vs.key}: fulcrum has no {what}: left out, with its "
                                    f"{len(vs.servers)} real server(s); write one service per address and port")
                continue
            if not vs.servers:
                self.warn(vs.where, f"{vs.key} has no real server: left out (a fulcrum pool needs one)")
                continue
            assert vs.address is not None and vs.port is not None
            name = service_name(vs)
            topology = self.topology(vs)
            service: dict[str, Any] = {"listen": [join_host_port(vs.address, vs.port)], "pool": name,
                                       "mode": "tcp", "topology": topology}
            if vs.protocol == "udp":
                service["protocol"] = "udp"
            if vs.persistence is not None:
                service["persistence"] = f"{vs.persistence}s"
                full = "255.255.255.255" if ":" not in vs.address else "128"
                if vs.netmask not in (None, full):
                    self.warn(vs.where, f"-M {vs.netmask}: fulcrum keeps each client address on its server; "
                                        "persistence by network is not mapped")
            for flag in vs.flags:
                self.warn(vs.where, f"{vs.key}: {flag}: not mapped")
            pools[name] = {"scheduler": self.scheduler(vs), "health": {"kind": "none"},
                           "servers": [self.real_server(vs, rs, topology) for rs in vs.servers.values()]}
            services[name] = service
        return {"services": services, "pools": pools} if services else {}

    def topology(self, vs: VirtualService) -> str:
        """IPVS forwards per real server; a fulcrum service has one topology: the first
        server's method, the others warned about."""
        servers = list(vs.servers.values())
        first = servers[0]
        topology = "fullnat" if first.method == "tunnel" else first.method
        if first.method == "tunnel":
            self.warn(first.where, "-i (IP-in-IP tunnelling): fulcrum has no tunnel; mapped to fullnat, which "
                                   "reaches servers anywhere, but they then see the balancer as the client and "
                                   "answer through it")
        for rs in servers[1:]:
            if rs.method != first.method:
                self.warn(rs.where, f"{rs.method} forwarding differs from the service's first real server "
                                    f"({first.where}): every server of a fulcrum service is reached by {topology}")
        return topology

    def scheduler(self, vs: VirtualService) -> str:
        if vs.scheduler in KERNEL_SCHEDULERS:
            return vs.scheduler
        self.warn(vs.where, f"-s {vs.scheduler}: the kernel data plane keeps no connection counts "
                            f"per server; wrr used (the weights are kept). Kernel schedulers: "
                            f"{', '.join(KERNEL_SCHEDULERS)}")
        return "wrr"

    def real_server(self, vs: VirtualService, rs: RealServer, topology: str) -> dict[str, Any]:
        port = rs.port or vs.port
        if topology == "dsr" and port != vs.port:
            # a gatewayed packet keeps its destination port: IPVS ignores the server's
            self.warn(rs.where, f"-r {join_host_port(rs.address, rs.port)} -g: direct routing keeps the "
                                f"virtual service's port {vs.port}, as IPVS does")
            port = vs.port
        server: dict[str, Any] = {"address": rs.address, "port": port, "weight": rs.weight}
        if rs.upper:
            server["max_connections"] = rs.upper
            self.warn(rs.where, f"-x {rs.upper}: kept as max_connections, which the kernel topologies do not "
                                "enforce (only the userspace proxy counts connections per server)")
        if rs.lower:
            self.warn(rs.where, f"-y {rs.lower}: fulcrum takes new connections again as soon as a server is "
                                "below max_connections (-x); the lower threshold is not mapped")
        return server


def service_name(vs: VirtualService) -> str:
    assert vs.address is not None
    label = re.sub(r"[^0-9A-Za-z]+", "_", vs.address).strip("_")
    return f"{vs.protocol}_{label}_{vs.port}"


def convert_file(path: str | Path) -> tuple[dict[str, Any], list[str]]:
    """ipvsadm-save output -> (fulcrum configuration as a dict, warnings).
    Raises IpvsadmError (file:line) or ConfigError (key paths)."""
    path = Path(path)
    importer = IpvsadmImport()
    importer.replay(read_rules(path))
    data = importer.build()
    if not data:
        reasons = "".join(f"\n  {warning}" for warning in importer.warnings)
        raise IpvsadmError(f"{path}: no virtual service fulcrum can run: nothing to import{reasons}")
    load_dict(data)
    return data, importer.warnings
