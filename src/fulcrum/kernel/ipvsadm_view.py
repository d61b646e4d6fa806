"""`fulcrum ipvsadm -L -n`: the kernel services in ipvsadm's own layout, so the eyes and
scripts of IPVS users read them unchanged. Pure: it formats what the node reports (the
services, their servers, nftables counters) and what conntrack lists; the command
(cli/ipvsadm.py) fetches both.

The layouts are ipvsadm's (ipvsadm.c: print_title, print_service_entry, print_largenum,
list_conn), column for column:

    IP Virtual Server version 1.2.1 (size=4096)
    Prot LocalAddress:Port Scheduler Flags
      -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
    TCP  192.168.10.100:80 wrr
      -> 10.0.0.11:80                 Masq    1      3          12

The first line keeps ipvsadm's wording (scripts skip it by position); 1.2.1 is the IPVS
version whose layout this is, `size` is the flow table size of the kernel data plane.
ActiveConn counts ESTABLISHED TCP flows, InActConn every other flow (other TCP states, all
UDP), as IPVS counts them."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from fulcrum.config.types import join_host_port  # ipvsadm's numeric form: [2001:db8::1]:80

IPVS_VERSION = "1.2.1"
FORWARD = {"nat": "Masq", "dsr": "Route", "fullnat": "FullNat"}
PROTOCOL_ORDER = {"TCP": 6, "UDP": 17}


@dataclass
class Counters:
    conns: int = 0
    inpkts: int = 0
    outpkts: int = 0
    inbytes: int = 0
    outbytes: int = 0


@dataclass
class RealServer:
    address: str
    port: int
    weight: int
    topology: str  # nat, fullnat, dsr
    active: int = 0
    inactive: int = 0
    counters: Counters = field(default_factory=Counters)


@dataclass
class VirtualService:
    protocol: str  # "TCP" or "UDP"
    address: str
    port: int
    scheduler: str
    persistence: int = 0  # seconds; 0 = not persistent
    servers: list[RealServer] = field(default_factory=list)
    counters: Counters = field(default_factory=Counters)


@dataclass
class Flow:
    """One conntrack entry: the client's view (original) and the server's (reply)."""

    protocol: str  # "TCP", "UDP"
    expires: int  # seconds
    state: str  # TCP state; "" for UDP
    source: tuple[str, int]
    virtual: tuple[str, int]
    destination: tuple[str, int]  # the reply's source: the server a NAT flow went to


def _sort_key(address: str, port: int) -> tuple[int, int, int]:
    ip = ipaddress.ip_address(address)
    return ip.version, int(ip), port


def _service_name(service: VirtualService) -> str:
    name = f"{service.protocol}  {join_host_port(service.address, service.port)}"
    return name if ":" in service.address else name[:33]  # ipvsadm cuts IPv4 names at 33


def _server_name(server: RealServer) -> str:
    name = join_host_port(server.address, server.port)
    return name if ":" in server.address else name[:28]


def largenum(value: int) -> str:
    """print_largenum: 9 columns, K/M/G/T beyond 100 million."""
    if value < 100_000_000:
        return f"{value:9d}"
    for limit, scale, unit in ((1_000_000_000, 1000, "K"), (100_000_000_000, 1_000_000, "M"),
                               (100_000_000_000_000, 1_000_000_000, "G")):
        if value < limit:
            return f"{value // scale:8d}{unit}"
    return f"{value // 1_000_000_000_000:8d}T"


def _sorted(services: Iterable[VirtualService]) -> list[VirtualService]:
    return sorted(services, key=lambda s: (PROTOCOL_ORDER.get(s.protocol, 255), *_sort_key(s.address, s.port)))


def _servers(service: VirtualService) -> list[RealServer]:
    return sorted(service.servers, key=lambda r: _sort_key(r.address, r.port))


def header(size: int) -> str:
    return f"IP Virtual Server version {IPVS_VERSION} (size={size})\n"


def list_services(services: Iterable[VirtualService], size: int) -> str:
    """`ipvsadm -L -n`."""
    out = [header(size), "Prot LocalAddress:Port Scheduler Flags\n",
           "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"]
    for service in _sorted(services):
        line = f"{_service_name(service)} {service.scheduler}"
        if service.persistence:
            line += f" persistent {service.persistence}"
        out.append(line + "\n")
        for server in _servers(service):
            out.append(f"  -> {_server_name(server):<28} {FORWARD[server.topology]:<7} {server.weight:<6d} "
                       f"{server.active:<10d} {server.inactive:<10d}\n")
    return "".join(out)


def _title(columns: tuple[str, ...]) -> str:
    return f"{'Prot LocalAddress:Port':<33}" + "".join(f" {c:>8}" for c in columns) + "\n  -> RemoteAddress:Port\n"


def _largenums(c: Counters) -> str:
    return "".join(largenum(v) for v in (c.conns, c.inpkts, c.outpkts, c.inbytes, c.outbytes))


def _counter_listing(services: Iterable[VirtualService], size: int, columns: tuple[str, ...],
                     rates: bool) -> str:
    out = [header(size), _title(columns)]
    for service in _sorted(services):
        out.append(f"{_service_name(service):<33}{_largenums(service.counters)}\n")
        for server in _servers(service):
            c = server.counters
            if rates:  # ipvsadm prints a server's CPS and PPS with %8u, its BPS as large numbers
                out.append(f"  -> {_server_name(server):<28} {c.conns:8d} {c.inpkts:8d} {c.outpkts:8d}"
                           f"{largenum(c.inbytes)}{largenum(c.outbytes)}\n")
            else:
                out.append(f"  -> {_server_name(server):<28}{_largenums(c)}\n")
    return "".join(out)


def list_stats(services: Iterable[VirtualService], size: int) -> str:
    """`ipvsadm -L -n --stats`: totals since the rules were installed."""
    return _counter_listing(services, size, ("Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"), rates=False)


def rate(before: Counters, after: Counters, seconds: float) -> Counters:
    """Per-second rates between two samples (IPVS estimates them over 2 s; fulcrum measures)."""
    def per_second(a: int, b: int) -> int:
        return max(0, round((b - a) / seconds)) if seconds > 0 else 0
    return Counters(per_second(before.conns, after.conns), per_second(before.inpkts, after.inpkts),
                    per_second(before.outpkts, after.outpkts), per_second(before.inbytes, after.inbytes),
                    per_second(before.outbytes, after.outbytes))


def list_rate(services: Iterable[VirtualService], size: int) -> str:
    """`ipvsadm -L -n --rate`; each Counters here holds rates (see `rate`)."""
    return _counter_listing(services, size, ("CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"), rates=True)


def list_connections(flows: Iterable[Flow]) -> str:
    """`ipvsadm -L -n -c`."""
    out = ["IPVS connection entries\n", f"pro expire {'state':<11} {'source':<18} {'virtual':<18} destination\n"]
    for flow in flows:
        minutes, seconds = divmod(max(flow.expires, 0), 60)
        state = flow.state or ("UDP" if flow.protocol == "UDP" else "NONE")
        expire = f"{minutes:02d}:{seconds:02d}"
        out.append(f"{flow.protocol:<3} {expire:<6} {state:<11} "
                   f"{join_host_port(*flow.source):<18} {join_host_port(*flow.virtual):<18} "
                   f"{join_host_port(*flow.destination)}\n")
    return "".join(out)


# -- conntrack ----------------------------------------------------------------------

_CONNTRACK_LINE = re.compile(r"^(?P<proto>tcp|udp)\s+\d+\s+(?P<expires>\d+)\s+(?:(?P<state>[A-Z_]+)\s+)?(?P<rest>.*)$")


def parse_conntrack(text: str) -> list[Flow]:
    """`conntrack -L` lines (tcp and udp; others skipped): the first src/dst/sport/dport
    are the original direction, the second the reply."""
    flows = []
    for line in text.splitlines():
        match = _CONNTRACK_LINE.match(line.strip())
        if not match:
            continue
        pairs = re.findall(r"(src|dst|sport|dport)=(\S+)", match.group("rest"))
        if len(pairs) < 8:
            continue
        orig = dict(pairs[:4])
        reply = dict(pairs[4:8])
        try:
            flows.append(Flow(match.group("proto").upper(), int(match.group("expires")),
                              match.group("state") or "",
                              (orig["src"], int(orig["sport"])), (orig["dst"], int(orig["dport"])),
                              (reply["src"], int(reply["sport"]))))
        except (KeyError, ValueError):
            continue
    return flows


def _normal(address: str) -> str:
    return str(ipaddress.ip_address(address))


def count_connections(services: list[VirtualService], flows: Iterable[Flow]) -> list[Flow]:
    """Fill each server's ActiveConn/InActConn from the flows to its service; returns the
    flows that belong to a kernel service (for -c). A NAT flow names its server in the
    reply direction; a dsr flow does not pass conntrack's NAT, so it is counted on the
    service only when it names a server."""
    by_virtual = {(s.protocol, _normal(s.address), s.port): s for s in services}
    ours = []
    for flow in flows:
        service = by_virtual.get((flow.protocol, _normal(flow.virtual[0]), flow.virtual[1]))
        if service is None:
            continue
        ours.append(flow)
        destination = (_normal(flow.destination[0]), flow.destination[1])
        for server in service.servers:
            if (_normal(server.address), server.port) == destination:
                if flow.protocol == "TCP" and flow.state == "ESTABLISHED":
                    server.active += 1
                else:
                    server.inactive += 1
                break
    return ours


# -- the node's report (kernel.list) --------------------------------------------------

def _split(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), int(port)


def from_stats(stats: list[dict[str, object]]) -> list[VirtualService]:
    """The kernel plane's stats (one dict per service and family, see kernel/plane.py)
    as IPVS virtual services: one per listen address, each with the service's servers
    and counters (a fulcrum service may listen on several VIPs; IPVS has one each)."""
    services = []
    for entry in stats:
        servers_data = entry.get("servers") or []
        assert isinstance(servers_data, list)
        for endpoint in entry.get("listen") or []:  # type: ignore[attr-defined]
            address, port = _split(str(endpoint))
            service = VirtualService(str(entry.get("protocol", "tcp")).upper(), address, port,
                                     str(entry.get("scheduler", "")), int(float(entry.get("persistence") or 0)))  # type: ignore[arg-type]
            for data in servers_data:
                counters = Counters(int(data.get("connections", 0)), int(data.get("in_packets", 0)),
                                    int(data.get("out_packets", 0)), int(data.get("in_bytes", 0)),
                                    int(data.get("out_bytes", 0)))
                service.servers.append(RealServer(str(data["address"]), int(data["port"]), int(data.get("weight", 0)),
                                                  str(entry.get("topology", "nat")), counters=counters))
                total = service.counters
                for name in ("conns", "inpkts", "outpkts", "inbytes", "outbytes"):
                    setattr(total, name, getattr(total, name) + getattr(counters, name))
            services.append(service)
    return services


CONNTRACK_TIMEOUT = 10.0


async def read_conntrack() -> tuple[str, str | None]:
    """`conntrack -L` of this network namespace (Debian's conntrack): (text, error)."""
    import asyncio
    import subprocess

    try:
        process = await asyncio.create_subprocess_exec(
            "conntrack", "-L", stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as failure:
        return "", f"conntrack: {failure} (install Debian's conntrack package)"
    try:
        out, errors = await asyncio.wait_for(process.communicate(), CONNTRACK_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        return "", f"conntrack -L did not answer within {CONNTRACK_TIMEOUT:g}s"
    if process.returncode != 0:
        return "", f"conntrack -L: {errors.decode(errors='replace').strip()}"
    return out.decode(errors="replace"), None
