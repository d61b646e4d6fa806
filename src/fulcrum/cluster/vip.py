"""Virtual IP addresses: added and removed through netlink (pyroute2), announced with
gratuitous ARP (IPv4) and unsolicited neighbour advertisements (IPv6, RFC 4861 §7.2.6).

The frame builders are pure; `Interface` does the netlink and socket work."""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
from pathlib import Path

from pyroute2 import IPRoute  # type: ignore[import-untyped]
from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

IFA_F_SECONDARY = 0x01
IFA_F_NODAD = 0x02  # a VIP must answer at once, not after duplicate address detection
ETH_P_ARP = 0x0806
BROADCAST_MAC = b"\xff" * 6
ALL_NODES = ipaddress.IPv6Address("ff02::1")
ND_NEIGHBOR_ADVERT = 136
NA_FLAG_ROUTER, NA_FLAG_OVERRIDE = 0x80000000, 0x20000000
ND_OPT_TARGET_LINKADDR = 2


def gratuitous_arp(mac: bytes, address: ipaddress.IPv4Address) -> bytes:
    """An Ethernet broadcast ARP request for our own address (RFC 5227 §3 announcement):
    neighbours update their cache entry to our MAC."""
    ethernet = BROADCAST_MAC + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + address.packed + bytes(6) + address.packed
    return ethernet + arp


def unsolicited_na(mac: bytes, address: ipaddress.IPv6Address, router: bool) -> bytes:
    """ICMPv6 neighbour advertisement with Override set and our link-layer address; the
    kernel fills in the checksum of ICMPv6 raw sockets."""
    flags = NA_FLAG_OVERRIDE | (NA_FLAG_ROUTER if router else 0)
    return (struct.pack("!BBHI", ND_NEIGHBOR_ADVERT, 0, 0, flags) + address.packed
            + struct.pack("!BB", ND_OPT_TARGET_LINKADDR, 1) + mac)


class Interface:
    """Netlink view of one interface: its addresses, MAC, and our VIPs on it."""

    def __init__(self, name: str):
        self.name = name
        self.index = socket.if_nametoindex(name)
        self._ipr = IPRoute()

    def close(self) -> None:
        self._ipr.close()

    def mac(self) -> bytes:
        [link] = self._ipr.get_links(self.index)
        return bytes.fromhex(link.get_attr("IFLA_ADDRESS").replace(":", ""))

    def addresses(self, family: int) -> list[tuple[IPAddress, int]]:
        """(address, IFA flags) of one family, in kernel order."""
        af = socket.AF_INET if family == 4 else socket.AF_INET6
        out = []
        for message in self._ipr.get_addr(index=self.index, family=af):
            address = message.get_attr("IFA_LOCAL") or message.get_attr("IFA_ADDRESS")
            flags = message.get_attr("IFA_FLAGS")
            out.append((ipaddress.ip_address(address), message["flags"] if flags is None else flags))
        return out

    def primary_address(self, family: int, exclude: set[IPAddress]) -> IPAddress:
        """The source of our adverts: the first primary IPv4 address, or for IPv6 the
        link-local address (§5.1.2.1); never one of our VIPs."""
        for address, flags in self.addresses(family):
            if address in exclude or flags & IFA_F_SECONDARY:
                continue
            if family == 4 or address.is_link_local:
                return address
        raise LookupError(f"{self.name} has no {'IPv4' if family == 4 else 'IPv6 link-local'} address")

    def add(self, vip: IPInterface) -> None:
        flags = IFA_F_NODAD if vip.version == 6 else 0
        try:
            self._ipr.addr("add", index=self.index, address=str(vip.ip),
                           prefixlen=vip.network.prefixlen, flags=flags)
        except NetlinkError as err:
            if err.code != errno.EEXIST:
                raise

    def remove(self, vip: IPInterface) -> None:
        try:
            self._ipr.addr("del", index=self.index, address=str(vip.ip), prefixlen=vip.network.prefixlen)
        except NetlinkError as err:
            if err.code not in (errno.EADDRNOTAVAIL, errno.ENOENT):
                raise

    def has(self, vip: IPInterface) -> bool:
        return any(address == vip.ip for address, _ in self.addresses(vip.version))

    def forwarding_v6(self) -> bool:
        path = Path(f"/proc/sys/net/ipv6/conf/{self.name}/forwarding")
        try:
            return path.read_text().strip() == "1"
        except OSError:
            return False


class Announcer:
    """Sends the announcement packets of a set of VIPs on one interface."""

    def __init__(self, interface: Interface):
        self.interface = interface
        self.mac = interface.mac()
        self._arp: socket.socket | None = None
        self._icmp6: socket.socket | None = None

    def announce(self, vips: list[IPInterface]) -> list[tuple[IPInterface, OSError]]:
        """Send one announcement per VIP; the VIPs that failed, with why (a link that is
        down or coming back says ENETDOWN): the caller retries them."""
        failed = []
        for vip in vips:
            try:
                if isinstance(vip, ipaddress.IPv4Interface):
                    self._send_arp(vip.ip)
                else:
                    self._send_na(vip.ip)
            except OSError as err:  # a down link must not stop the VRRP engine
                failed.append((vip, err))
        return failed

    def _send_arp(self, address: ipaddress.IPv4Address) -> None:
        if self._arp is None:
            self._arp = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
            self._arp.bind((self.interface.name, ETH_P_ARP))
        self._arp.send(gratuitous_arp(self.mac, address))

    def _send_na(self, address: ipaddress.IPv6Address) -> None:
        if self._icmp6 is None:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
            # RFC 4861 §7.1.2: a receiver drops neighbour discovery without hop limit 255.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, self.interface.index)
            self._icmp6 = sock
        packet = unsolicited_na(self.mac, address, router=self.interface.forwarding_v6())
        info = struct.pack("=16sI", address.packed, self.interface.index)  # source: the VIP itself
        self._icmp6.sendmsg([packet], [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, info)], 0,
                            (str(ALL_NODES), 0, 0, self.interface.index))

    def close(self) -> None:
        for sock in (self._arp, self._icmp6):
            if sock is not None:
                sock.close()
