"""PROXY protocol v1/v2 encode and decode, against byte strings written from the spec."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fulcrum.proxy.http.proxyproto import (
    Addresses,
    ProxyHeaderError,
    decode,
    encode_v1,
    encode_v2,
    trusted,
)

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def test_v1_text_as_in_the_spec() -> None:
    assert encode_v1(("192.0.2.1", 56324), ("198.51.100.2", 443)) == b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"
    assert encode_v1(("2001:db8::1", 1), ("2001:db8::2", 2)) == b"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n"
    assert encode_v1(("192.0.2.1", 1), ("2001:db8::2", 2)) == b"PROXY UNKNOWN\r\n"


def test_v2_bytes_as_in_the_spec() -> None:
    header = encode_v2(("192.0.2.1", 0x1234), ("198.51.100.2", 443))
    assert header == SIG + b"\x21\x11\x00\x0c" + bytes([192, 0, 2, 1, 198, 51, 100, 2]) + b"\x12\x34\x01\xbb"
    six = encode_v2(("2001:db8::1", 1), ("2001:db8::2", 2))
    assert six[12:16] == b"\x21\x21\x00\x24" and len(six) == 16 + 36


@given(st.ip_addresses(v=4) | st.ip_addresses(v=6), st.integers(0, 65535), st.integers(0, 65535),
       st.sampled_from([encode_v1, encode_v2]), st.integers(0, 120))
def test_round_trip_in_any_split(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, sport: int, dport: int,
                                 encode: object, cut: int) -> None:
    src, dst = (str(ip), sport), (str(ip), dport)
    header = encode(src, dst) + b"GET / HTTP/1.1\r\n"  # type: ignore[operator]
    cut = min(cut, len(header))
    partial = decode(header[:cut])
    if partial is None:
        result = decode(header)
        assert result is not None
    else:
        result = partial
    addresses, used = result
    assert addresses == Addresses(src, dst)
    assert header[used:] == b"GET / HTTP/1.1\r\n"


def test_local_and_unknown_carry_no_address() -> None:
    assert decode(b"PROXY UNKNOWN\r\nrest") == (Addresses(None, None), 15)
    assert decode(SIG + b"\x20\x00\x00\x00") == (Addresses(None, None), 16)


@pytest.mark.parametrize("bad", [
    b"GET / HTTP/1.1\r\n", b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", b"PROXY TCP4 ::1 ::1 1 2\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 70000 1\r\n", b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
    b"PROXY " + b"x" * 120, SIG + b"\x2f\x11\x00\x00",
])
def test_malformed_headers_raise(bad: bytes) -> None:
    with pytest.raises(ProxyHeaderError):
        decode(bad)


def test_trust_by_network() -> None:
    nets = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")]
    assert trusted("10.1.2.3", nets) and trusted("::ffff:10.0.0.1", nets) and trusted("fd00::5", nets)
    assert not trusted("192.0.2.1", nets) and not trusted("garbage", nets)
