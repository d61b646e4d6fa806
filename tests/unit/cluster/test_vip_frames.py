import ipaddress
import struct

from fulcrum.cluster.vip import gratuitous_arp, unsolicited_na
from fulcrum.cluster.vrrp.socket import _parse_ipv4

MAC = bytes.fromhex("020000f00c01")


def test_gratuitous_arp_is_a_broadcast_request_for_our_own_address():
    frame = gratuitous_arp(MAC, ipaddress.IPv4Address("198.18.0.100"))
    assert frame[:6] == b"\xff" * 6 and frame[6:12] == MAC and frame[12:14] == b"\x08\x06"
    htype, ptype, hlen, plen, op = struct.unpack("!HHBBH", frame[14:22])
    assert (htype, ptype, hlen, plen, op) == (1, 0x0800, 6, 4, 1)
    sender_mac, sender_ip, target_ip = frame[22:28], frame[28:32], frame[38:42]
    assert sender_mac == MAC
    assert sender_ip == target_ip == bytes([198, 18, 0, 100])
    assert len(frame) == 42


def test_unsolicited_na_overrides_and_carries_our_link_address():
    vip = ipaddress.IPv6Address("fd00:f0c::100")
    packet = unsolicited_na(MAC, vip, router=False)
    kind, code, _checksum, flags = struct.unpack("!BBHI", packet[:8])
    assert (kind, code) == (136, 0)
    assert flags == 0x20000000  # Override only; Solicited must be clear (RFC 4861 §7.2.6)
    assert packet[8:24] == vip.packed
    assert packet[24:26] == b"\x02\x01" and packet[26:32] == MAC
    assert struct.unpack("!I", unsolicited_na(MAC, vip, router=True)[4:8])[0] == 0xA0000000


def test_ipv4_receive_path_reads_the_header_fields():
    header = bytes.fromhex("45c0002400010000ff701483c6120001e0000012")
    received = _parse_ipv4(header + b"payload!")
    assert received is not None
    assert (received.ttl, received.protocol) == (255, 112)
    assert str(received.source) == "198.18.0.1" and str(received.destination) == "224.0.0.18"
    assert received.payload == b"payload!"
    assert _parse_ipv4(header[:10]) is None
