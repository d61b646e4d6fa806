"""VRRP version 3 advertisement codec (RFC 5798 §5). Pure: bytes and addresses in,
an `Advert` or bytes out; no sockets.

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
    |(rsvd) |     Max Adver Int     |          Checksum             |
    |                       IPvX Address(es)                        |
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

VERSION = 3  # §5.2.1
TYPE_ADVERTISEMENT = 1  # §5.2.2: the only type; others are discarded
PROTOCOL = 112  # §5.1.1.4 / §5.1.2.3: IP protocol / IPv6 next header
TTL = 255  # §5.1.1.3 / §5.1.2.2: sent with TTL / hop limit 255, checked on receipt (§7.1)
MULTICAST_V4 = ipaddress.IPv4Address("224.0.0.18")  # §5.1.1.2
MULTICAST_V6 = ipaddress.IPv6Address("ff02::12")  # §5.1.2.2
MAX_ADVERT_CENTIS = 0x0FFF  # §5.2.7: 12 bits

_HEADER = struct.Struct("!BBBBHH")


class MalformedPacket(ValueError):
    """A received packet that §7.1 says to discard; the message says why."""


@dataclass(frozen=True)
class Advert:
    vrid: int  # §5.2.3: 1..255
    priority: int  # §5.2.4: 0 = master stopping, 255 = address owner
    max_advert_centis: int  # §5.2.7: the sender's Advertisement_Interval, in centiseconds
    addresses: tuple[IPAddress, ...]  # §5.2.9: all of one family

    def __post_init__(self) -> None:
        if not 1 <= self.vrid <= 255:
            raise ValueError(f"vrid {self.vrid} is not 1..255")
        if not 0 <= self.priority <= 255:
            raise ValueError(f"priority {self.priority} is not 0..255")
        if not 1 <= self.max_advert_centis <= MAX_ADVERT_CENTIS:
            raise ValueError(f"max advert interval {self.max_advert_centis} cs is not 1..4095")
        if len(self.addresses) > 255:
            raise ValueError("at most 255 addresses fit the count field (§5.2.5)")
        if len({address.version for address in self.addresses}) > 1:
            raise ValueError("addresses mix IPv4 and IPv6")

    @property
    def max_advert_interval(self) -> float:
        """Seconds."""
        return self.max_advert_centis / 100


def encode(advert: Advert, source: IPAddress, destination: IPAddress) -> bytes:
    """The VRRP message (the IP payload) with its checksum over the pseudo-header (§5.2.8)."""
    _check_family(advert.addresses, source, destination)
    addresses = b"".join(address.packed for address in advert.addresses)
    header = _HEADER.pack((VERSION << 4) | TYPE_ADVERTISEMENT, advert.vrid, advert.priority,
                          len(advert.addresses), advert.max_advert_centis, 0)
    message = header + addresses
    checksum = _checksum(message, source, destination)
    return message[:6] + struct.pack("!H", checksum) + message[8:]


def decode(data: bytes, source: IPAddress, destination: IPAddress) -> Advert:
    """Parse and validate one VRRP message received from `source` for `destination`.

    Raises MalformedPacket for what §7.1 requires a receiver to discard."""
    if len(data) < _HEADER.size:
        raise MalformedPacket(f"{len(data)} bytes is shorter than the 8-byte VRRP header")
    version_type, vrid, priority, count, rsvd_interval, _ = _HEADER.unpack_from(data)
    version, kind = version_type >> 4, version_type & 0x0F
    if version != VERSION:  # §7.1: MUST verify the version field is 3
        raise MalformedPacket(f"version {version}, not {VERSION}")
    if kind != TYPE_ADVERTISEMENT:  # §5.2.2: unknown type MUST be discarded
        raise MalformedPacket(f"type {kind}, not {TYPE_ADVERTISEMENT} (advertisement)")
    if source.version != destination.version:
        raise MalformedPacket("source and destination are of different families")
    size = 4 if source.version == 4 else 16
    expected = _HEADER.size + count * size
    # §7.1: MUST verify that the packet contains the complete VRRP message.
    if len(data) != expected:
        raise MalformedPacket(f"{len(data)} bytes, but {count} IPv{source.version} addresses need {expected}")
    if _checksum(data, source, destination) != 0:  # §7.1: MUST verify the checksum
        raise MalformedPacket("bad checksum")
    if vrid == 0:
        raise MalformedPacket("vrid 0")
    if rsvd_interval & MAX_ADVERT_CENTIS == 0:
        # A zero interval would make the master-down interval zero: a takeover storm.
        raise MalformedPacket("max advert interval 0")
    addresses = tuple(ipaddress.ip_address(data[offset:offset + size])
                      for offset in range(_HEADER.size, expected, size))
    # §5.2.7: the 4 reserved bits are ignored on reception.
    return Advert(vrid, priority, rsvd_interval & MAX_ADVERT_CENTIS, addresses)


def check_ip_header(ttl: int, protocol: int) -> None:
    """The IP-level checks of the receive path (§7.1): TTL / hop limit 255 proves the
    sender is on this link; protocol / next header 112 is VRRP."""
    if protocol != PROTOCOL:
        raise MalformedPacket(f"IP protocol {protocol}, not {PROTOCOL}")
    if ttl != TTL:
        raise MalformedPacket(f"TTL/hop limit {ttl}, not {TTL}: not sent from this link")


def _check_family(addresses: tuple[IPAddress, ...], source: IPAddress, destination: IPAddress) -> None:
    families = {address.version for address in addresses} | {source.version, destination.version}
    if len(families) != 1:
        raise ValueError("source, destination and addresses must be of one family")


def _checksum(message: bytes, source: IPAddress, destination: IPAddress) -> int:
    # §5.2.8: the Internet checksum (RFC 1071) over a pseudo-header and the message.
    # IPv6 uses the RFC 2460 §8.1 pseudo-header; IPv4 the same fields in the TCP/UDP
    # layout (source, destination, zero, protocol, length) as keepalived and others do.
    if source.version == 4:
        pseudo = source.packed + destination.packed + struct.pack("!BBH", 0, PROTOCOL, len(message))
    else:
        pseudo = source.packed + destination.packed + struct.pack("!I3xB", len(message), PROTOCOL)
    return internet_checksum(pseudo + message)


def internet_checksum(data: bytes) -> int:
    """RFC 1071: one's complement of the one's complement sum of 16-bit words."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
