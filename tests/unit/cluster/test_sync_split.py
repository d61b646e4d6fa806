"""The one definition of what config sync shares and what stays on each node."""

from __future__ import annotations

import pytest
from sync_helpers import node_data

from fulcrum.config.errors import ConfigError
from fulcrum.config.load import load_dict
from fulcrum.config.split import merge, shared_part

LB0 = load_dict(node_data("lb0", priority=150, interface="eth0"))
LB1 = load_dict(node_data("lb1", priority=100, interface="ens3", port=8081))


def test_node_local_settings_are_not_shared():
    shared = shared_part(LB0)
    assert "log" not in shared and "workers" not in shared and "sync" not in shared
    assert "pidfile" not in shared["control"]
    router = shared["cluster"]["virtual_routers"]["v4"]
    assert "interface" not in router and "priority" not in router and "unicast_peers" not in router
    assert "interfaces" not in router["track"]
    # what describes the service is shared
    assert router["vips"] == ["198.18.0.100/24"] and router["track"]["pools"][0]["pool"] == "web"
    assert shared["pools"]["web"]["servers"][1]["port"] == 9002


def test_two_nodes_differing_only_locally_share_the_same_part():
    lb1_same_service = load_dict(node_data("lb1", priority=100, interface="ens3"))
    assert shared_part(lb1_same_service) == shared_part(LB0)
    assert shared_part(LB1) != shared_part(LB0)  # the listen port differs: a shared setting


def test_merge_takes_the_peer_service_and_keeps_this_node_settings():
    merged = merge(shared_part(LB0), LB1)
    assert merged.services["web"].listen[0].port == 8080  # from lb0
    router = merged.cluster.virtual_routers["v4"]
    assert (router.interface, router.priority) == ("ens3", 100)  # lb1's own
    assert router.track.interfaces[0].name == "ens3"
    assert merged.sync == LB1.sync and merged.log == LB1.log
    assert merged.control.pidfile == "/run/lb1.pid"


def test_merge_then_split_is_the_same_shared_part():
    # What keeps a synced change from coming back as a new version.
    for shared_from, local in ((LB0, LB1), (LB1, LB0)):
        shared = shared_part(shared_from)
        assert shared_part(merge(shared, local)) == shared


def test_a_virtual_router_new_to_this_node_is_refused_with_the_reason():
    data = node_data("lb0", priority=150)
    data["cluster"]["virtual_routers"]["v6"] = {"vrid": 52, "interface": "eth0", "vips": ["fd00:f0c::100/64"]}
    with pytest.raises(ConfigError) as info:
        merge(shared_part(load_dict(data)), LB1)
    [(path, reason)] = info.value.problems
    assert path == "cluster.virtual_routers.v6" and "interface and priority" in reason


def test_a_removed_virtual_router_is_removed_here_too():
    data = node_data("lb0", priority=150)
    del data["cluster"]
    merged = merge(shared_part(load_dict(data)), LB1)
    assert merged.cluster is None and merged.sync == LB1.sync


def test_an_invalid_shared_part_is_a_config_error():
    shared = shared_part(LB0)
    shared["services"]["web"]["pool"] = "nowhere"
    with pytest.raises(ConfigError) as info:
        merge(shared, LB1)
    assert ("services.web.pool", "no pool named 'nowhere'") in info.value.problems


@pytest.mark.parametrize("shared", [{"cluster": 5}, {"control": []},
                                    {"cluster": {"virtual_routers": {"v4": "eth0"}}}])
def test_a_malformed_shared_part_is_a_config_error_not_a_crash(shared):
    with pytest.raises(ConfigError):
        merge(shared, LB1)
