"""Edges that feed tracking: link state from netlink, ping targets over ICMP. Both run
on the VRRP loop with non-blocking sockets and report through a callback."""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path

from fulcrum.cluster.vrrp.packet import internet_checksum
from fulcrum.config.cluster import TrackPing
from fulcrum.health.counter import HealthCounter

log = logging.getLogger("fulcrum.cluster.watch")

RTMGRP_LINK = 0x1
RTM_NEWLINK, RTM_DELLINK = 16, 17
IFF_UP, IFF_RUNNING = 0x1, 0x40
IFLA_IFNAME = 3
_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHiII")
_RTATTR = struct.Struct("=HH")


def link_is_up(name: str) -> bool:
    try:
        state = Path(f"/sys/class/net/{name}/operstate").read_text().strip()
    except OSError:
        return False  # no such interface
    return state in ("up", "unknown")  # "unknown": links without carrier (lo, dummy)


def parse_link_messages(data: bytes) -> list[tuple[str, bool]]:
    """(interface name, operationally up) of each RTM_NEWLINK/RTM_DELLINK in a netlink read."""
    out = []
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _, _, _ = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size:
            break
        if kind in (RTM_NEWLINK, RTM_DELLINK):
            body = offset + _NLMSGHDR.size
            _, _, _, flags, _ = _IFINFOMSG.unpack_from(data, body)
            name = _attribute(data, body + _IFINFOMSG.size, offset + length, IFLA_IFNAME)
            if name is not None:
                up = kind == RTM_NEWLINK and flags & IFF_UP and flags & IFF_RUNNING
                out.append((name.rstrip(b"\0").decode(), bool(up)))
        offset += (length + 3) & ~3
    return out


def _attribute(data: bytes, start: int, end: int, wanted: int) -> bytes | None:
    while start + _RTATTR.size <= end:
        length, kind = _RTATTR.unpack_from(data, start)
        if length < _RTATTR.size:
            return None
        if kind == wanted:
            return data[start + _RTATTR.size:start + length]
        start += (length + 3) & ~3
    return None


class LinkWatcher:
    """Calls `on_change(name, up)` when a watched interface goes up or down."""

    def __init__(self, names: set[str], on_change: Callable[[str, bool], None]):
        self.loop = asyncio.get_running_loop()
        self.on_change = on_change
        self.state = {name: link_is_up(name) for name in names}
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK,
                                  socket.NETLINK_ROUTE)
        self.sock.bind((0, RTMGRP_LINK))
        self.loop.add_reader(self.sock.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError as err:  # ENOBUFS: we missed events; read the truth
                log.warning("link events lost (%s); rereading link states", err)
                for name in self.state:
                    self._update(name, link_is_up(name))
                continue
            for name, up in parse_link_messages(data):
                if name in self.state:
                    self._update(name, up)

    def _update(self, name: str, up: bool) -> None:
        if self.state[name] != up:
            self.state[name] = up
            self.on_change(name, up)

    def close(self) -> None:
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()


def echo_request(ident: int, sequence: int, family: int) -> bytes:
    """ICMP (type 8) or ICMPv6 (type 128) echo request; the kernel sums ICMPv6 itself."""
    kind = 8 if family == 4 else 128
    header = struct.pack("!BBHHH", kind, 0, 0, ident, sequence) + b"fulcrum"
    if family == 6:
        return header
    return header[:2] + struct.pack("!H", internet_checksum(header)) + header[4:]


def parse_echo_reply(data: bytes, family: int) -> tuple[int, int] | None:
    """(identifier, sequence) of an echo reply; IPv4 raw sockets include the IP header."""
    if family == 4:
        if not data:
            return None
        data = data[(data[0] & 0x0F) * 4:]
    if len(data) < 8 or data[0] != (0 if family == 4 else 129):
        return None
    ident, sequence = struct.unpack_from("!HH", data, 4)
    return ident, sequence


class Pinger:
    """Pings each target every `interval`; a reply within `timeout` is a success. The
    rise/fall counter of the health checks decides reachable or not."""

    def __init__(self, targets: list[TrackPing], on_change: Callable[[str, bool], None]):
        self.loop = asyncio.get_running_loop()
        self.on_change = on_change
        self.ident = os.getpid() & 0xFFFF
        self.sequence = itertools.count(1)
        self.targets = {str(t.target): t for t in targets}
        self.counters = {address: HealthCounter(t.rise, t.fall, "fully-up") for address, t in self.targets.items()}
        self.waiting: dict[int, tuple[str, asyncio.TimerHandle]] = {}
        self.sockets: dict[int, socket.socket] = {}
        self.handles: list[asyncio.TimerHandle] = []
        for family in {ipaddress.ip_address(address).version for address in self.targets}:
            sock = socket.socket(socket.AF_INET if family == 4 else socket.AF_INET6, socket.SOCK_RAW,
                                 socket.IPPROTO_ICMP if family == 4 else socket.IPPROTO_ICMPV6)
            sock.setblocking(False)
            self.sockets[family] = sock
            self.loop.add_reader(sock.fileno(), self._on_readable, family)
        for address in self.targets:
            self._send(address)

    def _send(self, address: str) -> None:
        target = self.targets[address]
        family = ipaddress.ip_address(address).version
        sequence = next(self.sequence) & 0xFFFF
        try:
            self.sockets[family].sendto(echo_request(self.ident, sequence, family), (address, 0))
        except OSError as err:  # unreachable network: a failure like a lost reply
            log.debug("ping %s: %s", address, err)
        self.waiting[sequence] = (address, self.loop.call_later(target.timeout, self._result, sequence, False))
        self.handles = [h for h in self.handles if not h.cancelled()]
        self.handles.append(self.loop.call_later(target.interval, self._send, address))

    def _on_readable(self, family: int) -> None:
        while True:
            try:
                data = self.sockets[family].recv(2048)
            except BlockingIOError:
                return
            reply = parse_echo_reply(data, family)
            if reply and reply[0] == self.ident and reply[1] in self.waiting:
                self._result(reply[1], True)

    def _result(self, sequence: int, ok: bool) -> None:
        entry = self.waiting.pop(sequence, None)
        if entry is None:
            return
        address, timeout = entry
        timeout.cancel()
        change = self.counters[address].record(ok, "reply" if ok else "no reply")
        if change is not None:
            self.on_change(address, self.counters[address].up)

    def close(self) -> None:
        for handle in self.handles:
            handle.cancel()
        for _, handle in self.waiting.values():
            handle.cancel()
        for sock in self.sockets.values():
            self.loop.remove_reader(sock.fileno())
            sock.close()
