"""Heartbeat v1: ha.cf + haresources for one node, mapped onto VRRP routers, VIPs, tracked
ping targets and managed commands, with every unmapped directive reported as `file:line`."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fulcrum.config.load import load_dict
from fulcrum.importers.heartbeat import PING_WEIGHT, HeartbeatError, advert_interval, convert_files
from fulcrum.importers.pen import parse_pen_argv

# The talk's two-node setup (addresses moved to 198.18.0.0/15): Heartbeat over unicast,
# lb0 preferred for the VIP, pen and Apache started by Heartbeat on the node holding it.
HA_CF = """\
# /etc/ha.d/ha.cf -- the same on lb0 and lb1
logfacility     local0
keepalive 2
warntime 10
deadtime 30
initdead 120
udpport 694
ucast eth0 198.18.0.11
ucast eth0 198.18.0.12
auto_failback on
node    lb0
node    lb1
"""
HARESOURCES = "lb0 198.18.0.20 pen httpd\n"
PEN_ARGV = "-x 6144 -c 262144 -h -H -p /tmp/pen.pid 198.18.0.20:80 198.18.1.10:80 198.18.1.11:80"


def files(tmp_path: Path, ha_cf: str = HA_CF, haresources: str = HARESOURCES) -> tuple[Path, Path]:
    (tmp_path / "ha.cf").write_text(ha_cf)
    (tmp_path / "haresources").write_text(haresources)
    return tmp_path / "ha.cf", tmp_path / "haresources"


def convert(tmp_path: Path, node: str = "lb0", local: set[str] | None = None, **kwargs: object) -> tuple[dict, list[str]]:
    ha_cf, haresources = files(tmp_path, **kwargs)  # type: ignore[arg-type]
    return convert_files(ha_cf, haresources, node, interface=None,
                         resource_dirs=[str(tmp_path / "resource.d")],
                         local=local if local is not None else {"198.18.0.11"})


def test_the_talks_files_for_the_preferred_node(tmp_path: Path) -> None:
    data, warnings = convert(tmp_path, "lb0", local={"198.18.0.11"})
    router = data["cluster"]["virtual_routers"]["group1"]
    assert router["priority"] == 150 and router["preempt"] is True and router["vrid"] == 1
    assert router["vips"] == ["198.18.0.20/32"] and router["interface"] == "eth0"
    assert router["unicast_src"] == "198.18.0.11" and router["unicast_peers"] == ["198.18.0.12"]
    assert router["advert_interval"] == "8.31s"
    # Heartbeat starts a group's resources in order and stops them in reverse
    assert router["notify"]["on_master"] == ["/etc/init.d/pen start", "/etc/init.d/httpd start"]
    assert router["notify"]["on_backup"] == ["/etc/init.d/httpd stop", "/etc/init.d/pen stop"]
    assert router["notify"]["on_stop"] == router["notify"]["on_fault"] == router["notify"]["on_backup"]
    load_dict(data)
    ha_cf = tmp_path / "ha.cf"
    for line, what in [(2, "logfacility"), (4, "warntime"), (6, "initdead"), (7, "udpport"), (5, "deadtime 30s")]:
        assert any(w.startswith(f"{ha_cf}:{line}: ") and what in w for w in warnings), (line, warnings)
    assert any("resource pen" in w and "fulcrum pen" in w for w in warnings)
    assert any("resource httpd" in w and "fulcrum import apache" in w for w in warnings)


def test_the_other_node_gets_the_lower_priority_and_its_own_source(tmp_path: Path) -> None:
    data, _ = convert(tmp_path, "lb1", local={"198.18.0.12"})
    router = data["cluster"]["virtual_routers"]["group1"]
    assert router["priority"] == 100
    assert router["unicast_src"] == "198.18.0.12" and router["unicast_peers"] == ["198.18.0.11"]
    load_dict(data)


def test_ucast_addresses_of_another_machine_are_all_peers_with_a_warning(tmp_path: Path) -> None:
    data, warnings = convert(tmp_path, "lb0", local=set())
    router = data["cluster"]["virtual_routers"]["group1"]
    assert router["unicast_peers"] == ["198.18.0.11", "198.18.0.12"] and "unicast_src" not in router
    assert any(w.startswith(f"{tmp_path / 'ha.cf'}:8: ") and "remove this node's own address" in w for w in warnings)


@given(st.floats(min_value=0.5, max_value=120.0), st.integers(min_value=1, max_value=254))
def test_master_down_interval_is_deadtime_at_centisecond_precision(deadtime: float, priority: int) -> None:
    adv = advert_interval(deadtime, priority)

    def master_down(interval: float) -> float:  # RFC 5798 §6.1
        return 3 * interval + (256 - priority) * interval / 256

    assert master_down(adv) <= deadtime + 1e-9
    assert master_down(adv + 0.01) > deadtime  # the largest interval that fits


@pytest.mark.parametrize(("value", "preempt", "warns"), [("on", True, False), ("off", False, False),
                                                         ("legacy", True, True)])
def test_auto_failback_is_preempt(tmp_path: Path, value: str, preempt: bool, warns: bool) -> None:
    data, warnings = convert(tmp_path, ha_cf=HA_CF.replace("auto_failback on", f"auto_failback {value}"))
    assert data["cluster"]["virtual_routers"]["group1"]["preempt"] is preempt
    assert any(":10: auto_failback legacy" in w for w in warnings) is warns


def test_ping_nodes_are_tracked_only_with_ipfail(tmp_path: Path) -> None:
    pings = "ping 198.18.0.1\nping_group routers 198.18.0.2 198.18.0.3\n"
    data, warnings = convert(tmp_path, ha_cf=HA_CF + pings)
    assert "track" not in data["cluster"]["virtual_routers"]["group1"]
    assert any(":13: ping nodes without" in w for w in warnings)
    data, warnings = convert(tmp_path, ha_cf=HA_CF + pings + "respawn hacluster /usr/lib/heartbeat/ipfail\n")
    track = data["cluster"]["virtual_routers"]["group1"]["track"]
    assert [p["target"] for p in track["ping"]] == ["198.18.0.1", "198.18.0.2", "198.18.0.3"]
    # one lost target takes the preferred node (150) below the other (100): ipfail's choice
    assert all(150 + p["weight"] < 100 for p in track["ping"]) and PING_WEIGHT < 0
    assert any(":14: ping_group routers" in w for w in warnings)
    assert not any("without preempt" in w for w in warnings)
    load_dict(data)
    # without preempt a lowered master keeps the VIP: said, not hidden
    _, warnings = convert(tmp_path, ha_cf=HA_CF.replace("auto_failback on", "auto_failback off") + pings
                          + "respawn hacluster /usr/lib/heartbeat/ipfail\n")
    assert any(":13: ipfail with auto_failback off" in w for w in warnings)


def test_ip_resource_forms_and_families(tmp_path: Path) -> None:
    haresources = ("lb1 IPaddr::198.18.0.30/24/eth1 IPaddr2::198.18.0.31/24/eth1/198.18.0.255 "
                   "IPaddr::198.18.2.1/24/eth3 "
                   "IPv6addr::fd00:f0c::30/64/eth1 198.18.0.32/24 \\\n   MailTo::ops@example.org\n"
                   "lb0 drbddisk::r0\n")
    data, warnings = convert(tmp_path, "lb0", haresources=haresources)
    routers = data["cluster"]["virtual_routers"]
    v4, v6 = routers["group1"], routers["group1_v6"]
    assert v4["vips"] == ["198.18.0.30/24", "198.18.0.31/24", "198.18.2.1/24", "198.18.0.32/24"]
    assert v4["interface"] == "eth1"
    assert any("addresses on eth1, eth3" in w for w in warnings)
    assert v4["priority"] == 100  # lb1 is preferred for this group
    assert v6["vips"] == ["fd00:f0c::30/64"] and v6["vrid"] == v4["vrid"] and "unicast_peers" not in v6
    assert v4["notify"]["on_master"] == ["/etc/ha.d/resource.d/MailTo ops@example.org start"]
    haresources_path = tmp_path / "haresources"
    assert any(w.startswith(f"{haresources_path}:1: ") and "198.18.0.255" in w for w in warnings)
    assert any(w.startswith(f"{haresources_path}:3: ") and "no IP address" in w for w in warnings)
    load_dict(data)


def test_a_pen_script_with_its_command_line_becomes_services(tmp_path: Path) -> None:
    scripts = tmp_path / "resource.d"
    scripts.mkdir()
    (scripts / "pen").write_text(f'#!/bin/sh\ncase "$1" in\nstart) /usr/bin/pen {PEN_ARGV} ;;\n'
                                 'stop) kill "$(cat /tmp/pen.pid)" ;;\nesac\n')
    (scripts / "httpd").write_text("#!/bin/sh\n")
    data, warnings = convert(tmp_path)
    expected = parse_pen_argv(PEN_ARGV.split()).config
    config = load_dict(data)
    assert config.services == expected.services and config.pools == expected.pools
    assert config.max_connections == 6144
    router = data["cluster"]["virtual_routers"]["group1"]
    assert router["notify"]["on_master"] == [f"{scripts}/httpd start"]  # pen is no longer a script to run
    assert any(f"{scripts}/pen:3" in w and "became fulcrum services" in w for w in warnings)


def test_keepalive_alone_sets_the_advert_interval(tmp_path: Path) -> None:
    ha_cf = "keepalive 500ms\nbcast eth2\nnode lb0 lb1\n"
    data, _ = convert(tmp_path, ha_cf=ha_cf)
    router = data["cluster"]["virtual_routers"]["group1"]
    assert router["advert_interval"] == "0.5s" and router["interface"] == "eth2"
    assert "unicast_peers" not in router  # bcast: multicast


@pytest.mark.parametrize(("ha_cf", "haresources", "message"), [
    (HA_CF, HARESOURCES.replace("lb0", "lb9"), None),
    (HA_CF.replace("node    lb0\n", ""), HARESOURCES, "--node lb0: not a node"),
    (HA_CF.replace("deadtime 30", "deadtime soon"), HARESOURCES, ":5: deadtime needs a time"),
    (HA_CF, "lb0 pen\n", "nothing to import"),
])
def test_errors_name_the_file(tmp_path: Path, ha_cf: str, haresources: str, message: str | None) -> None:
    if message is None:  # an unknown owner is only a warning: the group is preferred by nobody here
        data, warnings = convert(tmp_path, ha_cf=ha_cf, haresources=haresources)
        assert data["cluster"]["virtual_routers"]["group1"]["priority"] == 100
        assert any("lb9 is not a node" in w for w in warnings)
        return
    with pytest.raises(HeartbeatError, match=message):
        convert(tmp_path, ha_cf=ha_cf, haresources=haresources)
