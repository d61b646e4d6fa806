"""VRRP v3 and v2 codec. The known packets were captured with tcpdump from Debian's
keepalived 2.2.7 (version 3, and version 2 in its default settings) on a veth pair in
network namespaces."""

import ipaddress
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fulcrum.cluster.vrrp.packet import (
    AUTH_AH,
    AUTH_NONE,
    AUTH_PASSWORD,
    Advert,
    MalformedPacket,
    check_ip_header,
    decode,
    encode,
    internet_checksum,
    v2_discard_reason,
)

ip = ipaddress.ip_address
V4_SRC, V4_DST = ip("198.18.0.1"), ip("224.0.0.18")
V6_SRC, V6_DST = ip("fe80::38ee:75ff:fecc:9f03"), ip("ff02::12")
# vrid 51, priority 150, advert_int 1s, 198.18.0.100 and 198.18.0.101
KEEPALIVED_V4 = bytes.fromhex("31339602006404d1c6120064c6120065")
# vrid 52, priority 120, advert_int 0.5s, fd00:f0c::100
KEEPALIVED_V6 = bytes.fromhex("313478010032feaefd000f0c000000000000000000000100")


def test_decodes_keepalived_ipv4_advert():
    advert = decode(KEEPALIVED_V4, V4_SRC, V4_DST)
    assert advert == Advert(51, 150, 100, (ip("198.18.0.100"), ip("198.18.0.101")))
    assert advert.max_advert_interval == 1.0


def test_decodes_keepalived_ipv6_advert():
    advert = decode(KEEPALIVED_V6, V6_SRC, V6_DST)
    assert advert == Advert(52, 120, 50, (ip("fd00:f0c::100"),))


@pytest.mark.parametrize("packet, src, dst", [(KEEPALIVED_V4, V4_SRC, V4_DST), (KEEPALIVED_V6, V6_SRC, V6_DST)])
def test_encodes_byte_for_byte_like_keepalived(packet, src, dst):
    assert encode(decode(packet, src, dst), src, dst) == packet


def test_checksum_covers_the_pseudo_header():
    # The same message from another source address fails its checksum (§5.2.8).
    with pytest.raises(MalformedPacket, match="checksum"):
        decode(KEEPALIVED_V4, ip("198.18.0.2"), V4_DST)
    with pytest.raises(MalformedPacket, match="checksum"):
        decode(KEEPALIVED_V6, V6_SRC, ip("fe80::1"))


def test_rfc1071_example():
    # RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2; the checksum is its complement.
    assert internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0xFFFF - 0xDDF2


def with_byte(packet: bytes, index: int, value: int) -> bytes:
    return packet[:index] + bytes([value]) + packet[index + 1:]


@pytest.mark.parametrize("packet, reason", [
    (KEEPALIVED_V4[:7], "shorter than the 8-byte"),
    (with_byte(KEEPALIVED_V4, 0, 0x41), "version 4, not 2 or 3"),
    (with_byte(KEEPALIVED_V4, 0, 0x32), "type 2"),
    (with_byte(KEEPALIVED_V4, 3, 3), "3 IPv4 addresses need 20"),
    (KEEPALIVED_V4 + b"\0\0\0\0", "20 bytes, but 2"),
    (with_byte(KEEPALIVED_V4, 2, 151), "bad checksum"),
])
def test_malformed_packets_are_rejected_with_a_reason(packet, reason):
    with pytest.raises(MalformedPacket, match=reason):
        decode(packet, V4_SRC, V4_DST)


def resum(message: bytearray) -> bytes:
    message[6:8] = b"\0\0"
    message[6:8] = struct.pack("!H", internet_checksum(
        V4_SRC.packed + V4_DST.packed + struct.pack("!BBH", 0, 112, len(message)) + bytes(message)))
    return bytes(message)


def test_zero_advert_interval_is_rejected():
    message = bytearray(KEEPALIVED_V4)
    message[4:6] = b"\0\0"
    with pytest.raises(MalformedPacket, match="interval 0"):
        decode(resum(message), V4_SRC, V4_DST)


def test_reserved_bits_are_ignored_on_receipt():
    # §5.2.7: the 4 bits before Max Adver Int are sent as zero and ignored on receipt.
    message = bytearray(KEEPALIVED_V4)
    message[4] |= 0xF0
    assert decode(resum(message), V4_SRC, V4_DST).max_advert_centis == 100


def test_ip_header_checks_ttl_and_protocol():
    check_ip_header(ttl=255, protocol=112)
    with pytest.raises(MalformedPacket, match="TTL/hop limit 254"):
        check_ip_header(ttl=254, protocol=112)
    with pytest.raises(MalformedPacket, match="protocol 17"):
        check_ip_header(ttl=255, protocol=17)


def test_adverts_refuse_values_the_fields_cannot_carry():
    with pytest.raises(ValueError):
        Advert(0, 100, 100, ())
    with pytest.raises(ValueError):
        Advert(1, 100, 4096, ())
    with pytest.raises(ValueError):
        Advert(1, 100, 0, ())
    with pytest.raises(ValueError):
        Advert(1, 100, 100, (ip("198.18.0.1"), ip("fd00:f0c::1")))
    with pytest.raises(ValueError):
        encode(Advert(1, 100, 100, (ip("198.18.0.1"),)), V6_SRC, V6_DST)


v4 = st.builds(ipaddress.IPv4Address, st.integers(0, 2**32 - 1))
v6 = st.builds(ipaddress.IPv6Address, st.integers(0, 2**128 - 1))


@st.composite
def adverts(draw):
    family = draw(st.sampled_from([v4, v6]))
    addresses = tuple(draw(st.lists(family, max_size=20)))
    return (Advert(draw(st.integers(1, 255)), draw(st.integers(0, 255)), draw(st.integers(1, 4095)), addresses),
            draw(family), draw(family))


@given(adverts())
def test_round_trip(case):
    advert, src, dst = case
    assert decode(encode(advert, src, dst), src, dst) == advert


@given(adverts(), st.data())
def test_any_single_bit_flip_is_rejected(case, data):
    advert, src, dst = case
    packet = bytearray(encode(advert, src, dst))
    bit = data.draw(st.integers(0, len(packet) * 8 - 1))
    packet[bit // 8] ^= 1 << (bit % 8)
    try:
        decoded = decode(bytes(packet), src, dst)
    except MalformedPacket:
        return
    # The checksum covers every bit, even the ignored reserved ones: no single flip survives.
    raise AssertionError(f"flipped bit {bit} decoded as {decoded}")


@given(st.binary(max_size=200), st.sampled_from([(V4_SRC, V4_DST), (V6_SRC, V6_DST)]))
def test_arbitrary_bytes_decode_or_raise_malformed(data, addresses):
    try:
        advert = decode(data, *addresses)
    except MalformedPacket:
        return
    assert encode(advert, *addresses)[:4] == data[:4]


# -- version 2 (RFC 3768), as keepalived sends it without `vrrp_version` -------------------

# vrid 51, priority 150, advert_int 1, auth_type PASS, auth_pass secret12, 198.18.0.100 and .101
KEEPALIVED_V2_PASS = bytes.fromhex("2133960201014d5cc6120064c61200657365637265743132")
# the same instance stopping: priority 0
KEEPALIVED_V2_PASS_STOP = bytes.fromhex("2133000201 01e35cc6120064c61200657365637265743132".replace(" ", ""))
# vrid 52, priority 120, advert_int 3, no authentication, 198.18.0.102
KEEPALIVED_V2 = bytes.fromhex("213478010003a04ec61200660000000000000000")
TWO_VIPS = (ip("198.18.0.100"), ip("198.18.0.101"))


def test_decodes_keepalived_v2_adverts():
    assert decode(KEEPALIVED_V2_PASS, V4_SRC, V4_DST) == Advert(
        51, 150, 100, TWO_VIPS, version=2, auth_type=AUTH_PASSWORD, auth_data=b"secret12")
    assert decode(KEEPALIVED_V2_PASS_STOP, V4_SRC, V4_DST).priority == 0
    advert = decode(KEEPALIVED_V2, V4_SRC, V4_DST)
    assert advert == Advert(52, 120, 300, (ip("198.18.0.102"),), version=2)
    assert advert.max_advert_interval == 3.0 and advert.auth_data == bytes(8)


@pytest.mark.parametrize("packet", [KEEPALIVED_V2_PASS, KEEPALIVED_V2_PASS_STOP, KEEPALIVED_V2])
def test_encodes_v2_byte_for_byte_like_keepalived(packet):
    assert encode(decode(packet, V4_SRC, V4_DST), V4_SRC, V4_DST) == packet


def test_v2_checksum_covers_the_message_only():
    # RFC 3768 §5.3.8: no pseudo-header, so any source and destination verify ...
    assert decode(KEEPALIVED_V2, ip("198.18.0.99"), ip("198.18.0.2")).vrid == 52
    # ... and the checksum is the plain RFC 1071 sum of the message.
    assert internet_checksum(KEEPALIVED_V2) == 0


def test_a_short_password_is_zero_padded_as_keepalived_sends_it():
    advert = Advert(51, 150, 100, TWO_VIPS, version=2, auth_type=AUTH_PASSWORD, auth_data=b"abc")
    assert encode(advert, V4_SRC, V4_DST)[-8:] == b"abc\0\0\0\0\0"


@pytest.mark.parametrize("packet, reason", [
    (KEEPALIVED_V2_PASS[:20], "20 bytes, but VRRPv2 with 2 IPv4 addresses needs 24"),
    (KEEPALIVED_V2_PASS[:16], "needs 24"),  # a v3-sized message marked version 2
    (with_byte(KEEPALIVED_V2_PASS, 0, 0x22), "type 2"),
    (with_byte(KEEPALIVED_V2_PASS, 20, ord("S")), "bad checksum"),  # the password is covered
    (with_byte(KEEPALIVED_V2_PASS, 5, 2), "bad checksum"),
])
def test_malformed_v2_packets_are_rejected_with_a_reason(packet, reason):
    with pytest.raises(MalformedPacket, match=reason):
        decode(packet, V4_SRC, V4_DST)


def test_v2_over_ipv6_is_rejected():
    with pytest.raises(MalformedPacket, match="IPv4 only"):
        decode(KEEPALIVED_V2, V6_SRC, V6_DST)
    with pytest.raises(ValueError, match="IPv4"):
        encode(Advert(52, 120, 300, (), version=2), V6_SRC, V6_DST)


def test_v2_zero_interval_is_rejected():
    message = bytearray(KEEPALIVED_V2)
    message[5] = 0
    message[6:8] = b"\0\0"
    message[6:8] = struct.pack("!H", internet_checksum(bytes(message)))
    with pytest.raises(MalformedPacket, match="interval 0"):
        decode(bytes(message), V4_SRC, V4_DST)


def test_v2_adverts_refuse_what_v2_cannot_carry():
    with pytest.raises(ValueError, match="whole seconds"):
        Advert(1, 100, 150, (), version=2)  # 1.5 s
    with pytest.raises(ValueError, match="whole seconds"):
        Advert(1, 100, 25600, (), version=2)  # 256 s
    with pytest.raises(ValueError, match="IPv4"):
        Advert(1, 100, 100, (ip("fd00:f0c::1"),), version=2)
    with pytest.raises(ValueError, match="8 bytes"):
        Advert(1, 100, 100, (), version=2, auth_type=1, auth_data=b"123456789")
    with pytest.raises(ValueError, match="no authentication"):
        Advert(1, 100, 100, (), auth_type=1, auth_data=b"x")
    with pytest.raises(ValueError, match="version 4"):
        Advert(1, 100, 100, (), version=4)


def test_v2_receiver_discards_another_interval_or_authentication():
    # RFC 3768 §7.1: Adver Int and the authentication must match ours.
    with_pass = decode(KEEPALIVED_V2_PASS, V4_SRC, V4_DST)
    assert v2_discard_reason(with_pass, 100, b"secret12") is None
    assert "interval 1s, ours is 2s" in v2_discard_reason(with_pass, 200, b"secret12")
    assert v2_discard_reason(with_pass, 100, b"secret13") == "wrong authentication password"
    assert v2_discard_reason(with_pass, 100, None) == "authentication PASS, ours is none"
    plain = decode(KEEPALIVED_V2, V4_SRC, V4_DST)
    assert v2_discard_reason(plain, 300, None) is None
    assert v2_discard_reason(plain, 300, b"secret12") == "authentication none, ours is PASS"
    ah = Advert(52, 120, 300, (), version=2, auth_type=AUTH_AH)
    assert v2_discard_reason(ah, 300, None) == "authentication AH, ours is none"
    short = Advert(51, 150, 100, (), version=2, auth_type=AUTH_PASSWORD, auth_data=b"abc")
    assert v2_discard_reason(short, 100, b"abc") is None
    assert AUTH_NONE == 0


@st.composite
def v2_adverts(draw):
    addresses = tuple(draw(st.lists(v4, max_size=20)))
    auth_type = draw(st.sampled_from([AUTH_NONE, AUTH_PASSWORD]))
    auth_data = draw(st.binary(min_size=1, max_size=8)) if auth_type else b""
    return (Advert(draw(st.integers(1, 255)), draw(st.integers(0, 255)), 100 * draw(st.integers(1, 255)),
                   addresses, 2, auth_type, auth_data), draw(v4), draw(v4))


@given(v2_adverts())
def test_v2_round_trip(case):
    advert, src, dst = case
    assert decode(encode(advert, src, dst), src, dst) == advert


@given(v2_adverts(), st.data())
def test_any_single_bit_flip_of_a_v2_advert_is_rejected(case, data):
    advert, src, dst = case
    packet = bytearray(encode(advert, src, dst))
    bit = data.draw(st.integers(0, len(packet) * 8 - 1))
    packet[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(MalformedPacket):
        decode(bytes(packet), src, dst)
