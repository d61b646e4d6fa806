"""conntrackd.conf from `cluster.conntrack`, and the switch commands of each VRRP state in
the order of conntrack-tools' primary-backup.sh."""

from __future__ import annotations

import pytest

from fulcrum.cluster.conntrackd import paths, render, switch_commands
from fulcrum.config.cluster import Cluster, ConntrackSync
from fulcrum.config.errors import ConfigError
from fulcrum.config.load import load_dict

ROUTERS = {"v4": {"vrid": 1, "interface": "eth0", "vips": ["198.18.0.100/24"]}}


def sync(**fields: object) -> ConntrackSync:
    return ConntrackSync.model_validate({"interface": "eth1", "address": "10.9.0.1", "peer": "10.9.0.2",
                                         "state_dir": "/run/test-ct", **fields})


def test_render_is_ftfw_over_udp_unicast_to_the_peer() -> None:
    text = render(sync(port=3781))
    assert "Mode FTFW {" in text
    assert "IPv4_address 10.9.0.1\n" in text
    assert "IPv4_Destination_Address 10.9.0.2\n" in text
    assert "Port 3781\n" in text
    assert "Interface eth1\n" in text
    assert "LockFile /run/test-ct/conntrackd.lock" in text
    assert "Path /run/test-ct/conntrackd.ctl" in text
    # the link's own flows and loopback are not replicated; TCP and UDP flows are
    ignored = text.split("Address Ignore {")[1].split("}")[0].split()
    assert ignored == ["IPv4_address", "127.0.0.1", "IPv4_address", "10.9.0.1", "IPv4_address", "10.9.0.2"]
    accepted = text.split("Protocol Accept {")[1].split("}")[0].split()
    assert accepted == ["TCP", "UDP"]
    assert text.count("{") == text.count("}")


def test_render_ipv6_link() -> None:
    text = render(sync(address="fd00:9::1", peer="fd00:9::2"))
    assert "IPv6_address fd00:9::1\n" in text
    assert "IPv6_Destination_Address fd00:9::2\n" in text
    assert "IPv6_address ::1\n" in text
    assert "IPv4_" not in text


def test_switch_commands_follow_primary_backup_sh() -> None:
    s = sync()
    conf = paths(s).config
    assert switch_commands(s, "master") == [["conntrackd", "-C", conf, flag] for flag in ("-c", "-f", "-R", "-B")]
    assert switch_commands(s, "backup") == [["conntrackd", "-C", conf, flag] for flag in ("-t", "-n")]
    assert switch_commands(s, "fault") == [["conntrackd", "-C", conf, "-t"]]
    assert switch_commands(s, "stop") == []


def test_model_refuses_mixed_families_and_unknown_router() -> None:
    with pytest.raises(ConfigError) as err:
        load_dict({"cluster": {"virtual_routers": ROUTERS, "conntrack": {
            "interface": "eth1", "address": "10.9.0.1", "peer": "fd00::2"}}})
    assert err.value.problems[0][0] == "cluster.conntrack"
    assert "one family" in err.value.problems[0][1]
    with pytest.raises(ConfigError) as err:
        load_dict({"cluster": {"virtual_routers": ROUTERS, "conntrack": {
            "interface": "eth1", "address": "10.9.0.1", "peer": "10.9.0.2", "router": "nope"}}})
    assert "no virtual router named 'nope'" in err.value.problems[0][1]
    cluster = Cluster.model_validate({"virtual_routers": ROUTERS, "conntrack": {
        "interface": "eth1", "address": "10.9.0.1", "peer": "10.9.0.2", "router": "v4"}})
    assert cluster.conntrack is not None and cluster.conntrack.port == 3780
