import struct

from fulcrum.cluster.vrrp.packet import internet_checksum
from fulcrum.cluster.watch import (
    IFF_RUNNING,
    IFF_UP,
    RTM_DELLINK,
    RTM_NEWLINK,
    echo_request,
    parse_echo_reply,
    parse_link_messages,
)


def link_message(kind: int, flags: int, name: str) -> bytes:
    attribute_name = name.encode() + b"\0"
    attribute = struct.pack("=HH", 4 + len(attribute_name), 3) + attribute_name
    attribute += b"\0" * (-len(attribute) % 4)
    body = struct.pack("=BxHiII", 0, 1, 7, flags, 0) + attribute
    return struct.pack("=IHHII", 16 + len(body), kind, 0, 0, 0) + body


def test_link_events_report_operational_state_by_name():
    data = (link_message(RTM_NEWLINK, IFF_UP | IFF_RUNNING, "eth1")
            + link_message(RTM_NEWLINK, IFF_UP, "eth2")  # up but no carrier
            + link_message(RTM_DELLINK, IFF_UP | IFF_RUNNING, "eth3")
            + struct.pack("=IHHII", 20, 24, 0, 0, 0) + b"\0" * 4)  # a route message: ignored
    assert parse_link_messages(data) == [("eth1", True), ("eth2", False), ("eth3", False)]


def test_truncated_link_messages_stop_the_parse():
    assert parse_link_messages(link_message(RTM_NEWLINK, IFF_UP, "eth1")[:10]) == []
    assert parse_link_messages(struct.pack("=IHHII", 0, RTM_NEWLINK, 0, 0, 0)) == []


def test_echo_request_v4_has_a_valid_checksum_v6_leaves_it_to_the_kernel():
    v4 = echo_request(0x1234, 7, family=4)
    assert v4[0] == 8 and internet_checksum(v4) == 0
    assert struct.unpack("!HH", v4[4:8]) == (0x1234, 7)
    v6 = echo_request(0x1234, 7, family=6)
    assert v6[0] == 128 and v6[2:4] == b"\0\0"


def test_echo_replies_are_recognised_behind_the_ipv4_header():
    ip_header = bytes([0x45]) + bytes(19)
    reply = bytes([0, 0, 0, 0]) + struct.pack("!HH", 0x1234, 7)
    assert parse_echo_reply(ip_header + reply, family=4) == (0x1234, 7)
    assert parse_echo_reply(bytes([129, 0, 0, 0]) + struct.pack("!HH", 1, 2), family=6) == (1, 2)
    assert parse_echo_reply(ip_header + bytes([8]) + reply[1:], family=4) is None  # a request
    assert parse_echo_reply(b"", family=4) is None
