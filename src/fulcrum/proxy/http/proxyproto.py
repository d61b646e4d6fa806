"""The PROXY protocol (HAProxy's spec, versions 1 and 2): encode the header sent to servers,
decode the header a trusted upstream balancer sends us. Pure: bytes in, bytes out.

Spec: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt (§2.1 v1, §2.2 v2)."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"  # §2.2: 12 bytes no other protocol starts with
V1_MAX = 107  # §2.1: the longest v1 line, CRLF included
V2_LOCAL, V2_PROXY = 0x20, 0x21  # version 2 + command
AF_INET_STREAM, AF_INET6_STREAM = 0x11, 0x21


class ProxyHeaderError(ValueError):
    """The bytes are not a valid PROXY protocol header."""


@dataclass(frozen=True)
class Addresses:
    """Who connected to whom, as the upstream balancer saw it; None for LOCAL/UNKNOWN."""

    src: tuple[str, int] | None
    dst: tuple[str, int] | None


def encode_v1(src: tuple[str, int], dst: tuple[str, int]) -> bytes:
    family = "TCP6" if ":" in src[0] else "TCP4"
    if (":" in dst[0]) != (family == "TCP6"):
        return b"PROXY UNKNOWN\r\n"  # §2.1: mixed families cannot be expressed
    return f"PROXY {family} {src[0]} {dst[0]} {src[1]} {dst[1]}\r\n".encode()


def encode_v2(src: tuple[str, int], dst: tuple[str, int]) -> bytes:
    s, d = ipaddress.ip_address(src[0]), ipaddress.ip_address(dst[0])
    if s.version != d.version:
        return V2_SIGNATURE + bytes([V2_LOCAL, 0]) + struct.pack("!H", 0)
    family = AF_INET_STREAM if s.version == 4 else AF_INET6_STREAM
    body = s.packed + d.packed + struct.pack("!HH", src[1], dst[1])
    return V2_SIGNATURE + bytes([V2_PROXY, family]) + struct.pack("!H", len(body)) + body


def decode(data: bytes) -> tuple[Addresses, int] | None:
    """(addresses, bytes consumed), or None if more bytes are needed. Raises ProxyHeaderError."""
    if V2_SIGNATURE.startswith(data[:12]):  # the v2 signature, or the start of it
        return None if len(data) < 16 else _decode_v2(data)
    if b"PROXY ".startswith(data[:6]):
        end = data.find(b"\r\n")
        if end < 0 or end + 2 > V1_MAX:
            if len(data) >= V1_MAX:
                raise ProxyHeaderError("PROXY v1 line too long")
            return None
        return _decode_v1(data[:end].decode("ascii", "replace")), end + 2
    raise ProxyHeaderError("no PROXY protocol header")


def _decode_v1(line: str) -> Addresses:
    parts = line.split(" ")
    if parts[:2] == ["PROXY", "UNKNOWN"]:
        return Addresses(None, None)
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError(f"bad PROXY v1 line {line!r}")
    try:
        src_ip, dst_ip = ipaddress.ip_address(parts[2]), ipaddress.ip_address(parts[3])
        src_port, dst_port = int(parts[4]), int(parts[5])
    except ValueError as err:
        raise ProxyHeaderError(f"bad PROXY v1 line {line!r}") from err
    if src_ip.version != (4 if parts[1] == "TCP4" else 6) or not (0 <= src_port < 65536 and 0 <= dst_port < 65536):
        raise ProxyHeaderError(f"bad PROXY v1 line {line!r}")
    return Addresses((str(src_ip), src_port), (str(dst_ip), dst_port))


def _decode_v2(data: bytes) -> tuple[Addresses, int] | None:
    command, family = data[12], data[13]
    (length,) = struct.unpack("!H", data[14:16])
    if len(data) < 16 + length:
        return None
    body = data[16:16 + length]
    if command == V2_LOCAL:
        return Addresses(None, None), 16 + length
    if command != V2_PROXY:
        raise ProxyHeaderError(f"unknown PROXY v2 command {command:#x}")
    size = {AF_INET_STREAM: 4, AF_INET6_STREAM: 16}.get(family)
    if size is None:
        return Addresses(None, None), 16 + length  # §2.2: other families are accepted, unused
    if length < 2 * size + 4:
        raise ProxyHeaderError("PROXY v2 address block too short")
    src = ipaddress.ip_address(body[:size])
    dst = ipaddress.ip_address(body[size:2 * size])
    src_port, dst_port = struct.unpack("!HH", body[2 * size:2 * size + 4])
    return Addresses((str(src), src_port), (str(dst), dst_port)), 16 + length  # TLVs skipped


def trusted(peer_ip: str, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        address = ipaddress.ip_address(peer_ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in net for net in networks)
