"""VRRP advertisement codec: version 3 (RFC 5798 §5) and version 2 (RFC 3768 §5, what
keepalived speaks by default for IPv4). Pure: bytes and addresses in, an `Advert` or
bytes out; no sockets.

Version 3 (RFC 5798 §5.1):

    |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
    |(rsvd) |     Max Adver Int     |          Checksum             |
    |                       IPvX Address(es)                        |

Version 2 (RFC 3768 §5.1), IPv4 only:

    |Version| Type  | Virtual Rtr ID|   Priority    | Count IP Addrs|
    |   Auth Type   |   Adver Int   |          Checksum             |
    |                         IP Address(es)                        |
    |                     Authentication Data (1)                   |
    |                     Authentication Data (2)                   |

An `Advert` carries the interval in centiseconds for both, so the state machine sees
one unit; a version 2 interval is whole seconds (§5.3.7)."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

VERSION = 3  # §5.2.1
VERSION_2 = 2  # RFC 3768 §5.3.1
TYPE_ADVERTISEMENT = 1  # §5.2.2: the only type; others are discarded
PROTOCOL = 112  # §5.1.1.4 / §5.1.2.3: IP protocol / IPv6 next header
TTL = 255  # §5.1.1.3 / §5.1.2.2: sent with TTL / hop limit 255, checked on receipt (§7.1)
MULTICAST_V4 = ipaddress.IPv4Address("224.0.0.18")  # §5.1.1.2
MULTICAST_V6 = ipaddress.IPv6Address("ff02::12")  # §5.1.2.2
MAX_ADVERT_CENTIS = 0x0FFF  # §5.2.7: 12 bits
MAX_ADVERT_SECONDS_V2 = 0xFF  # RFC 3768 §5.3.7: 8 bits of seconds
AUTH_NONE, AUTH_PASSWORD, AUTH_AH = 0, 1, 2  # RFC 3768 §5.3.6 (1 and 2 as RFC 2338 defined them)
AUTH_DATA_SIZE = 8  # RFC 3768 §5.3.10: two 32-bit words, always present

_HEADER = struct.Struct("!BBBBHH")
_HEADER_V2 = struct.Struct("!BBBBBBH")


class MalformedPacket(ValueError):
    """A received packet that §7.1 says to discard; the message says why."""


@dataclass(frozen=True)
class Advert:
    vrid: int  # §5.2.3: 1..255
    priority: int  # §5.2.4: 0 = master stopping, 255 = address owner
    max_advert_centis: int  # §5.2.7: the sender's Advertisement_Interval, in centiseconds
    addresses: tuple[IPAddress, ...]  # §5.2.9: all of one family
    version: int = VERSION
    # Version 2 only (RFC 3768 §5.3.6, §5.3.10): keepalived's `auth_type PASS` sends type 1
    # and the password, zero-padded to 8 bytes; without authentication type 0 and zeros.
    auth_type: int = AUTH_NONE
    auth_data: bytes = b""

    def __post_init__(self) -> None:
        if not 1 <= self.vrid <= 255:
            raise ValueError(f"vrid {self.vrid} is not 1..255")
        if not 0 <= self.priority <= 255:
            raise ValueError(f"priority {self.priority} is not 0..255")
        if self.version == VERSION:
            if not 1 <= self.max_advert_centis <= MAX_ADVERT_CENTIS:
                raise ValueError(f"max advert interval {self.max_advert_centis} cs is not 1..4095")
            if self.auth_type or self.auth_data:
                raise ValueError("VRRPv3 has no authentication (RFC 5798 §9)")
        elif self.version == VERSION_2:
            seconds, rest = divmod(self.max_advert_centis, 100)
            if rest or not 1 <= seconds <= MAX_ADVERT_SECONDS_V2:
                raise ValueError(f"advert interval {self.max_advert_centis} cs is not 1..255 whole seconds")
            if not 0 <= self.auth_type <= 255 or len(self.auth_data) > AUTH_DATA_SIZE:
                raise ValueError("auth type is one byte, auth data at most 8 bytes")
            # One value per packet: the field is always 8 bytes, zero-padded.
            object.__setattr__(self, "auth_data", self.auth_data.ljust(AUTH_DATA_SIZE, b"\0"))
            if any(address.version != 4 for address in self.addresses):
                raise ValueError("VRRPv2 carries IPv4 addresses only (RFC 3768 §5.3.9)")
        else:
            raise ValueError(f"version {self.version} is not 2 or 3")
        if len(self.addresses) > 255:
            raise ValueError("at most 255 addresses fit the count field (§5.2.5)")
        if len({address.version for address in self.addresses}) > 1:
            raise ValueError("addresses mix IPv4 and IPv6")

    @property
    def max_advert_interval(self) -> float:
        """Seconds."""
        return self.max_advert_centis / 100


def encode(advert: Advert, source: IPAddress, destination: IPAddress) -> bytes:
    """The VRRP message (the IP payload) with its checksum: over the pseudo-header for
    version 3 (§5.2.8), over the message alone for version 2 (RFC 3768 §5.3.8)."""
    _check_family(advert.addresses, source, destination)
    if advert.version == VERSION_2:
        if source.version != 4:
            raise ValueError("VRRPv2 is IPv4 only (RFC 3768)")
        return _encode_v2(advert)
    addresses = b"".join(address.packed for address in advert.addresses)
    header = _HEADER.pack((VERSION << 4) | TYPE_ADVERTISEMENT, advert.vrid, advert.priority,
                          len(advert.addresses), advert.max_advert_centis, 0)
    message = header + addresses
    checksum = _checksum(message, source, destination)
    return message[:6] + struct.pack("!H", checksum) + message[8:]


def decode(data: bytes, source: IPAddress, destination: IPAddress) -> Advert:
    """Parse and validate one VRRP message received from `source` for `destination`.

    Either version: the caller compares `Advert.version` with its own (§7.1 in both
    RFCs), so that a peer of the other version can be named in the log rather than
    silently dropped. Raises MalformedPacket for what §7.1 requires a receiver to discard."""
    if len(data) < _HEADER.size:
        raise MalformedPacket(f"{len(data)} bytes is shorter than the 8-byte VRRP header")
    version_type, vrid, priority, count, rsvd_interval, _ = _HEADER.unpack_from(data)
    version, kind = version_type >> 4, version_type & 0x0F
    if version == VERSION_2:
        return _decode_v2(data, source, destination)
    if version != VERSION:  # §7.1: MUST verify the version field is 3
        raise MalformedPacket(f"version {version}, not {VERSION_2} or {VERSION}")
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


def _encode_v2(advert: Advert) -> bytes:
    # RFC 3768 §5.3.8: the checksum covers the VRRP message only, no pseudo-header.
    header = _HEADER_V2.pack((VERSION_2 << 4) | TYPE_ADVERTISEMENT, advert.vrid, advert.priority,
                             len(advert.addresses), advert.auth_type, advert.max_advert_centis // 100, 0)
    message = header + b"".join(address.packed for address in advert.addresses) + advert.auth_data
    return message[:6] + struct.pack("!H", internet_checksum(message)) + message[8:]


def _decode_v2(data: bytes, source: IPAddress, destination: IPAddress) -> Advert:
    version_type, vrid, priority, count, auth_type, interval, _ = _HEADER_V2.unpack_from(data)
    if version_type & 0x0F != TYPE_ADVERTISEMENT:  # RFC 3768 §5.3.2
        raise MalformedPacket(f"type {version_type & 0x0F}, not {TYPE_ADVERTISEMENT} (advertisement)")
    if source.version != 4 or destination.version != 4:
        raise MalformedPacket("VRRPv2 over IPv6: RFC 3768 is IPv4 only")
    expected = _HEADER_V2.size + count * 4 + AUTH_DATA_SIZE
    # RFC 3768 §7.1: MUST verify that the packet contains the complete VRRP packet.
    if len(data) != expected:
        raise MalformedPacket(f"{len(data)} bytes, but VRRPv2 with {count} IPv4 addresses needs {expected}")
    if internet_checksum(data) != 0:  # RFC 3768 §7.1, §5.3.8
        raise MalformedPacket("bad checksum")
    if vrid == 0:
        raise MalformedPacket("vrid 0")
    if interval == 0:
        raise MalformedPacket("advert interval 0")
    end = _HEADER_V2.size + count * 4
    addresses = tuple(ipaddress.IPv4Address(data[offset:offset + 4]) for offset in range(_HEADER_V2.size, end, 4))
    return Advert(vrid, priority, interval * 100, addresses, VERSION_2, auth_type, data[end:])


def v2_discard_reason(advert: Advert, advert_centis: int, password: bytes | None) -> str | None:
    """Why a version 2 router must discard `advert` although it decoded (RFC 3768 §7.1):
    another Adver Int than ours, or another authentication than ours (§5.3.6; a
    password compared over all 8 bytes, as RFC 2338 §5.3.6.1 and keepalived do)."""
    if advert.max_advert_centis != advert_centis:
        return (f"advert interval {advert.max_advert_centis // 100}s, ours is {advert_centis / 100:g}s "
                "(VRRPv2 routers must agree)")
    expected = AUTH_NONE if password is None else AUTH_PASSWORD
    if advert.auth_type != expected:
        names = {AUTH_NONE: "none", AUTH_PASSWORD: "PASS", AUTH_AH: "AH"}
        return (f"authentication {names.get(advert.auth_type, advert.auth_type)}, "
                f"ours is {names[expected]}")
    if password is not None and advert.auth_data != password.ljust(AUTH_DATA_SIZE, b"\0"):
        return "wrong authentication password"
    return None


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
