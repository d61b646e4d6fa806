"""The raw IP protocol 112 socket of one virtual router: the I/O edge of the codec.

IPv4 adverts go to 224.0.0.18 (§5.1.1.2), IPv6 adverts to ff02::12 (§5.1.2.2), or to
each unicast peer; always with TTL / hop limit 255 (§5.1.1.3, §5.1.2.2). A received
packet comes back with the IP fields the receive path checks (§7.1): TTL / hop limit,
protocol, source and destination (the checksum covers them)."""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass

from fulcrum.cluster.vrrp.packet import MULTICAST_V4, MULTICAST_V6, PROTOCOL, TTL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Linux values the socket module does not export.
IP_PKTINFO = 8
_IP_PKTINFO = struct.Struct("=i4s4s")  # struct in_pktinfo: ifindex, spec_dst, addr
_IP_MREQN = struct.Struct("=4s4si")  # struct ip_mreqn: group, address, ifindex
_IN6_PKTINFO = struct.Struct("=16sI")  # struct in6_pktinfo: address, ifindex
TOS_NETWORK_CONTROL = 0xC0  # CS6, as routers and keepalived send VRRP: queued first


@dataclass(frozen=True)
class Received:
    payload: bytes  # the VRRP message
    source: IPAddress
    destination: IPAddress
    ttl: int  # TTL or hop limit
    protocol: int


class VrrpSocket:
    def __init__(self, interface: str, family: int, source: IPAddress,
                 peers: list[IPAddress] | None = None):
        self.interface = interface
        self.ifindex = socket.if_nametoindex(interface)
        self.family = family
        self.source = source
        self.destinations: list[IPAddress] = list(peers or []) or [
            MULTICAST_V4 if family == 4 else MULTICAST_V6]
        self.unicast = bool(peers)
        self.sock = socket.socket(socket.AF_INET if family == 4 else socket.AF_INET6,
                                  socket.SOCK_RAW, PROTOCOL)
        try:
            self.sock.setblocking(False)
            # Only this interface's packets; adverts never leave through another.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
            if family == 4:
                self._setup_v4()
            else:
                self._setup_v6()
        except BaseException:
            self.sock.close()
            raise

    def _setup_v4(self) -> None:
        sock, any_address = self.sock, bytes(4)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, TTL)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, TTL)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, TOS_NETWORK_CONTROL)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                        _IP_MREQN.pack(any_address, any_address, self.ifindex))
        if not self.unicast:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                            _IP_MREQN.pack(MULTICAST_V4.packed, any_address, self.ifindex))

    def _setup_v6(self) -> None:
        sock = self.sock
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, TTL)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, TTL)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, TOS_NETWORK_CONTROL)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, self.ifindex)
        # IPv6 raw sockets hand over no header: ask for the hop limit and the destination.
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
        if not self.unicast:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
                            MULTICAST_V6.packed + struct.pack("@I", self.ifindex))

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def send(self, payload: bytes, destination: IPAddress) -> None:
        """Send from `self.source` (the checksum was computed with it) out of our interface."""
        if self.family == 4:
            info = _IP_PKTINFO.pack(self.ifindex, self.source.packed, bytes(4))
            self.sock.sendmsg([payload], [(socket.IPPROTO_IP, IP_PKTINFO, info)],
                              0, (str(destination), 0))
        else:
            info = _IN6_PKTINFO.pack(self.source.packed, self.ifindex)
            self.sock.sendmsg([payload], [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, info)],
                              0, (str(destination), 0, 0, self.ifindex))

    def receive(self) -> Received | None:
        """One packet, or None when nothing is waiting."""
        try:
            data, ancillary, _, address = self.sock.recvmsg(65535, 256)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:  # e.g. ENETDOWN, reported by the next read as well: try later
            return None
        if self.family == 4:
            return _parse_ipv4(data)
        hop_limit, destination = -1, None
        for level, kind, value in ancillary:
            if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_HOPLIMIT:
                hop_limit = struct.unpack("@i", value[:4])[0]
            elif level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO:
                destination = ipaddress.IPv6Address(value[:16])
        source = ipaddress.IPv6Address(address[0].split("%")[0])
        # The socket only delivers next header 112.
        return Received(data, source, destination or MULTICAST_V6, hop_limit, PROTOCOL)


def _parse_ipv4(data: bytes) -> Received | None:
    # IPv4 raw sockets hand over the IP header: TTL, protocol and both addresses are there.
    if len(data) < 20 or data[0] >> 4 != 4:
        return None
    header_length = (data[0] & 0x0F) * 4
    if len(data) < header_length:
        return None
    return Received(payload=data[header_length:], source=ipaddress.IPv4Address(data[12:16]),
                    destination=ipaddress.IPv4Address(data[16:20]), ttl=data[8], protocol=data[9])
