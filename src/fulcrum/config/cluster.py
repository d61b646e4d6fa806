"""The `cluster` section of the configuration: virtual routers (VRRP v3, RFC 5798, or
v2, RFC 3768, as keepalived speaks by default), their virtual addresses, tracking and
notify hooks. The lead wires it into the root
model as `cluster: Cluster | None = None`; without it a node runs alone."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainSerializer,
    ValidationInfo,
    field_validator,
    model_validator,
)

from fulcrum.config.strict import Strict
from fulcrum.config.types import Duration, Port

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


def _parse_vip(value: Any) -> IPInterface:
    """`198.18.0.10/24`, `fd00:f0c::10/64`; without a prefix, a host route (/32, /128)."""
    if isinstance(value, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an address with an optional prefix, e.g. 198.18.0.10/24")
    try:
        return ipaddress.ip_interface(value.strip())
    except ValueError as err:
        raise ValueError(f"{value!r} is not an address/prefix") from err


VirtualAddress = Annotated[
    IPInterface, BeforeValidator(_parse_vip), PlainSerializer(str, return_type=str)
]


def _parse_ip(value: Any) -> IPAddress:
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value
    try:
        return ipaddress.ip_address(str(value).strip())
    except ValueError as err:
        raise ValueError(f"{value!r} is not an IP address") from err


IPAddr = Annotated[IPAddress, BeforeValidator(_parse_ip), PlainSerializer(str, return_type=str)]


def _check_interface(name: str) -> str:
    # Linux IFNAMSIZ is 16 including the NUL; names never contain '/' or whitespace.
    if not re.fullmatch(r"[^/\s:]{1,15}", name):
        raise ValueError(f"{name!r} is not a network interface name")
    return name


InterfaceName = Annotated[str, AfterValidator(_check_interface)]


def _check_advert_interval(seconds: float) -> float:
    # RFC 5798 §5.2.7: 12 bits of centiseconds, so 10 ms .. 40.95 s in steps of 10 ms;
    # RFC 3768 §5.3.7: 8 bits of seconds. The version's own bound is checked by the router.
    centis = round(seconds * 100)
    if abs(centis - seconds * 100) > 1e-6:
        raise ValueError("must be a multiple of 10ms (VRRP counts centiseconds)")
    if not 1 <= centis <= 25500:
        raise ValueError("must be between 10ms and 40.95s (version 2: 1s to 255s)")
    return centis / 100


AdvertInterval = Annotated[Duration, AfterValidator(_check_advert_interval)]

# keepalived semantics, so keepalived and Heartbeat configurations import as they are:
# a positive weight is added to the priority while the tracked thing is healthy, a
# negative one while it has failed; weight 0 puts the virtual router in fault state.
TrackWeight = Annotated[int, Field(ge=-254, le=254)]


class TrackInterface(Strict):
    name: InterfaceName
    weight: TrackWeight = 0


class TrackPing(Strict):
    """A ping node (Heartbeat's ipfail): failed after `fall` unanswered pings in a row."""

    target: IPAddr
    weight: TrackWeight = 0
    interval: Duration = 1.0
    timeout: Duration = 1.0
    fall: int = Field(3, ge=1, le=100)
    rise: int = Field(2, ge=1, le=100)


class TrackPool(Strict):
    """Failed when the pool has no healthy server as seen from this node."""

    pool: str
    weight: TrackWeight = 0


class Track(Strict):
    interfaces: list[TrackInterface] = Field(default_factory=list)
    ping: list[TrackPing] = Field(default_factory=list)
    pools: list[TrackPool] = Field(default_factory=list)


class Notify(Strict):
    """Commands run (in order, each with `timeout`) when the state changes."""

    on_master: list[str] = Field(default_factory=list)
    on_backup: list[str] = Field(default_factory=list)
    on_fault: list[str] = Field(default_factory=list)
    on_stop: list[str] = Field(default_factory=list)
    timeout: Duration = 10.0


class Announce(Strict):
    """Gratuitous ARP (IPv4) / unsolicited neighbour advertisements (IPv6) on becoming master."""

    repeat: int = Field(5, ge=1, le=100, description="packets per address per announcement (keepalived's garp_master_repeat)")
    interval: Duration = Field(0.0, description="gap between the repeated packets (garp_interval)")
    delay: Duration = Field(5.0, description="announce once more this long after becoming master; 0 = not (garp_master_delay)")
    refresh: Duration = Field(0.0, description="announce again this often while master; 0 = never (garp_master_refresh)")


class Authentication(Strict):
    """VRRPv2's simple password, as keepalived sends `authentication { auth_type PASS;
    auth_pass ... }` (RFC 2338 §5.3.6.1; RFC 3768 §5.3.6 keeps the field). It travels in
    clear text: it keeps misconfigured routers apart, it does not stop an attacker."""

    type: str = Field("PASS", description="PASS (simple password); AH is not supported")
    password: str = Field(description="1 to 8 bytes, the same on every node (keepalived's auth_pass)")

    @field_validator("type")
    @classmethod
    def _pass_only(cls, value: str) -> str:
        kind = value.strip().upper()
        if kind == "AH":
            raise ValueError("AH (IPsec Authentication Header) is not supported: use PASS or no "
                             "authentication, the same on every node")
        if kind != "PASS":
            raise ValueError(f"{value!r} is not an authentication type: PASS")
        return kind

    @field_validator("password")
    @classmethod
    def _eight_bytes(cls, value: str) -> str:
        # RFC 3768 §5.3.10: two 32-bit words of authentication data.
        if not 1 <= len(value.encode()) <= 8:
            raise ValueError("must be 1 to 8 bytes: VRRPv2 carries 8 bytes of authentication data "
                             "(keepalived cuts a longer auth_pass to its first 8)")
        return value


class VirtualRouter(Strict):
    vrid: int = Field(ge=1, le=255, description="virtual router id (RFC 5798 §5.2.3)")
    # Before the fields whose rules depend on it (validators see the fields above them).
    version: Literal[2, 3] = Field(3, description="VRRP version: 3 (RFC 5798) or 2 (RFC 3768, IPv4 only, "
                                                  "keepalived's default); the same on every node")
    interface: InterfaceName
    priority: int = Field(100, ge=1, le=255,
                          description="1..254; 255 = this node owns the addresses (§5.2.4)")
    advert_interval: AdvertInterval = Field(1.0, description="10ms..40.95s in 10 ms steps; version 2: whole seconds 1s..255s")
    authentication: Authentication | None = Field(None, description="version 2 only: keepalived's PASS authentication")
    preempt: bool = Field(True, description="a higher-priority backup takes over (Heartbeat's auto_failback)")
    preempt_delay: Duration = Field(0.0, le=1000.0,
                                    description="wait this long after first seeing a lower-priority master before preempting it")
    accept: bool = Field(True, description="RFC 5798 Accept_Mode: a non-owner master accepts traffic to the VIPs; a load balancer needs it")
    unicast_src: IPAddr | None = Field(None, description="source of unicast adverts; default: the interface's primary address")
    unicast_peers: list[IPAddr] = Field(default_factory=list,
                                        description="send adverts to these peers instead of multicast")
    vips: list[VirtualAddress] = Field(min_length=1, max_length=255)
    announce: Announce = Field(default_factory=Announce)
    track: Track = Field(default_factory=Track)
    notify: Notify = Field(default_factory=Notify)

    @field_validator("advert_interval")
    @classmethod
    def _interval_of_the_version(cls, seconds: float, info: ValidationInfo) -> float:
        if info.data.get("version") == 2:
            if seconds != int(seconds):  # RFC 3768 §5.3.7: whole seconds, 8 bits
                raise ValueError("must be whole seconds (1s..255s) with version 2 (RFC 3768 §5.3.7)")
        elif seconds > 40.95:  # RFC 5798 §5.2.7: 12 bits of centiseconds
            raise ValueError("must be between 10ms and 40.95s with version 3 (RFC 5798 §5.2.7)")
        return seconds

    @field_validator("authentication")
    @classmethod
    def _authentication_needs_v2(cls, value: Authentication | None, info: ValidationInfo) -> Authentication | None:
        if value is not None and info.data.get("version") == 3:
            raise ValueError("only with version = 2: VRRPv3 has no authentication (RFC 5798 §9)")
        return value

    @field_validator("vips")
    @classmethod
    def _v2_is_ipv4(cls, vips: list[IPInterface], info: ValidationInfo) -> list[IPInterface]:
        if info.data.get("version") == 2 and any(vip.version == 6 for vip in vips):
            raise ValueError("version 2 (RFC 3768) carries IPv4 only: use version 3 for IPv6 vips")
        return vips

    @property
    def family(self) -> int:
        return self.vips[0].version

    @property
    def owner(self) -> bool:
        return self.priority == 255

    @model_validator(mode="after")
    def _one_family(self) -> VirtualRouter:
        # RFC 5798 §1: an IPv4 and an IPv6 virtual router are separate instances, even
        # with the same VRID; every address carried in one advert is of one family.
        family = self.family
        if any(vip.version != family for vip in self.vips):
            raise ValueError("vips mix IPv4 and IPv6: use one virtual router per family (the vrid may be the same)")
        others = [*self.unicast_peers, *([self.unicast_src] if self.unicast_src else [])]
        if any(address.version != family for address in others):
            raise ValueError(f"unicast_src and unicast_peers must be IPv{family} like the vips")
        if self.unicast_src and not self.unicast_peers:
            raise ValueError("unicast_src needs unicast_peers")
        if len(set(self.vips)) != len(self.vips):
            raise ValueError("a vip is listed twice")
        weights = [item.weight for items in (self.track.interfaces, self.track.ping, self.track.pools)
                   for item in items]
        if self.owner and any(weights):
            raise ValueError("the address owner (priority 255) is never lowered (RFC 5798 §5.2.4): "
                             "track with weight 0 (fault) or use a lower priority")
        return self


class ConntrackSync(Strict):
    """conntrackd in FTFW mode (reliable: acknowledged, resent) over UDP unicast on the
    cluster link, as conntrack-tools' examples/sync/ftfw set it up."""

    interface: InterfaceName = Field(description="the dedicated cluster link conntrackd sends on")
    address: IPAddr = Field(description="this node's address on that link")
    peer: IPAddr = Field(description="the other node's address on that link")
    port: Port = Field(3780, description="UDP port of the state messages (both nodes)")
    state_dir: str = Field("/run/fulcrum/conntrackd",
                           description="where fulcrum writes conntrackd.conf, its control socket and lock file")
    command: str = Field("conntrackd", description="the conntrackd program")
    router: str | None = Field(None, description="the virtual router whose state switches conntrackd; "
                                                 "None = the first one")

    @model_validator(mode="after")
    def _same_family(self) -> ConntrackSync:
        if self.address.version != self.peer.version:
            raise ValueError("address and peer must be of one family (IPv4 or IPv6)")
        if self.address == self.peer:
            raise ValueError("address and peer are the same address")
        if not self.state_dir.startswith("/"):
            raise ValueError("state_dir must be an absolute path")
        return self


class Cluster(Strict):
    virtual_routers: dict[str, VirtualRouter] = Field(min_length=1)
    conntrack: ConntrackSync | None = Field(
        None, description="replicate connection state to the peer with conntrackd (kernel nat/fullnat services)")

    @model_validator(mode="after")
    def _unique_routers(self) -> Cluster:
        # A VRID names one virtual router per interface and address family (§5.2.3).
        seen: dict[tuple[str, int, int], str] = {}
        for name, router in self.virtual_routers.items():
            key = (router.interface, router.family, router.vrid)
            if key in seen:
                raise ValueError(f"virtual router {name!r} repeats vrid {router.vrid} of {seen[key]!r} "
                                 f"on {router.interface} (IPv{router.family})")
            seen[key] = name
        if self.conntrack is not None and self.conntrack.router is not None \
                and self.conntrack.router not in self.virtual_routers:
            raise ValueError(f"conntrack.router: no virtual router named {self.conntrack.router!r}")
        return self


def reference_problems(cluster: Cluster, pool_names: set[str]) -> list[tuple[str, str]]:
    """Rules spanning sections, for config/load.py's check_references: tracked pools exist."""
    problems = []
    for name, router in cluster.virtual_routers.items():
        for i, tracked in enumerate(router.track.pools):
            if tracked.pool not in pool_names:
                problems.append((f"cluster.virtual_routers.{name}.track.pools[{i}].pool",
                                 f"no pool named {tracked.pool!r}"))
    return problems
