import ipaddress
import re

import pytest
from pydantic import ValidationError

from fulcrum.config.cluster import Cluster, VirtualRouter, reference_problems
from fulcrum.config.errors import ConfigError


def router(**overrides):
    data = {"vrid": 51, "interface": "eth0", "vips": ["198.18.0.10/24"]}
    data.update(overrides)
    return data


def problems(data) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        Cluster.model_validate(data)
    return ConfigError.from_validation(info.value, ("cluster",)).problems


def test_defaults_follow_rfc_5798():
    vr = VirtualRouter.model_validate(router())
    assert (vr.priority, vr.advert_interval, vr.preempt, vr.version) == (100, 1.0, True, 3)
    assert vr.vips == [ipaddress.ip_interface("198.18.0.10/24")]
    assert vr.family == 4 and not vr.owner


def test_round_trip_through_json():
    data = {"virtual_routers": {"web": router(advert_interval="50ms", unicast_peers=["198.18.0.2"],
                                              unicast_src="198.18.0.1", preempt_delay="30s")}}
    cluster = Cluster.model_validate(data)
    again = Cluster.model_validate(cluster.model_dump(mode="json"))
    assert again == cluster
    assert cluster.model_dump(mode="json")["virtual_routers"]["web"]["advert_interval"] == "50ms"


@pytest.mark.parametrize("interval", ["5ms", "41s", "15ms", 0])
def test_advert_interval_is_whole_centiseconds_in_12_bits(interval):
    [(path, reason)] = problems({"virtual_routers": {"web": router(advert_interval=interval)}})
    assert path == "cluster.virtual_routers.web.advert_interval"
    assert "10ms" in reason


@pytest.mark.parametrize("interval, seconds", [("10ms", 0.01), ("40.95s", 40.95), ("70ms", 0.07)])
def test_advert_interval_bounds_accepted(interval, seconds):
    assert VirtualRouter.model_validate(router(advert_interval=interval)).advert_interval == seconds


@pytest.mark.parametrize("field, value", [("vrid", 0), ("vrid", 256), ("priority", 0),
                                          ("priority", 256), ("interface", "a/b"), ("version", 4)])
def test_out_of_range_fields_name_their_path(field, value):
    [(path, _)] = problems({"virtual_routers": {"web": router(**{field: value})}})
    assert path == f"cluster.virtual_routers.web.{field}"


def test_priority_255_is_the_address_owner():
    assert VirtualRouter.model_validate(router(priority=255)).owner


def test_families_do_not_mix():
    [(_, reason)] = problems({"virtual_routers": {"web": router(vips=["198.18.0.10/24", "fd00:f0c::10/64"])}})
    assert "one virtual router per family" in reason
    [(_, reason)] = problems({"virtual_routers": {"web": router(unicast_peers=["fd00:f0c::2"])}})
    assert "IPv4" in reason


def test_unknown_keys_are_rejected():
    [(path, reason)] = problems({"virtual_routers": {"web": router(advert_int=1)}})
    assert (path, reason) == ("cluster.virtual_routers.web.advert_int", "unknown key")


def test_same_vrid_allowed_per_family_not_twice_per_interface():
    v6 = router(vips=["fd00:f0c::10/64"])
    Cluster.model_validate({"virtual_routers": {"a": router(), "b": v6}})
    [(_, reason)] = problems({"virtual_routers": {"a": router(), "b": router(vips=["198.18.0.11/24"])}})
    assert "repeats vrid 51" in reason


def test_vip_without_prefix_is_a_host_address():
    vr = VirtualRouter.model_validate(router(vips=["198.18.0.10", "198.18.0.11/24"]))
    assert [vip.network.prefixlen for vip in vr.vips] == [32, 24]


def test_track_weights_and_pool_references():
    cluster = Cluster.model_validate({"virtual_routers": {"web": router(track={
        "interfaces": [{"name": "eth1", "weight": -30}],
        "ping": [{"target": "198.18.0.1"}],
        "pools": [{"pool": "web"}, {"pool": "nope", "weight": -10}]})}})
    assert reference_problems(cluster, {"web"}) == [
        ("cluster.virtual_routers.web.track.pools[1].pool", "no pool named 'nope'")]
    [(path, _)] = problems({"virtual_routers": {"web": router(track={"interfaces": [{"name": "eth1", "weight": 300}]})}})
    assert path == "cluster.virtual_routers.web.track.interfaces[0].weight"


def test_the_owner_is_not_lowered_by_tracking():
    [(_, reason)] = problems({"virtual_routers": {"web": router(
        priority=255, track={"interfaces": [{"name": "eth1", "weight": -10}]})}})
    assert "never lowered" in reason
    VirtualRouter.model_validate(router(priority=255, track={"interfaces": [{"name": "eth1"}]}))


# -- version 2 (RFC 3768) --------------------------------------------------------------------

def v2(**overrides):
    return {"virtual_routers": {"web": router(version=2, **overrides)}}


def test_version_2_with_keepalived_authentication():
    cluster = Cluster.model_validate(v2(advert_interval="3s", authentication={"type": "pass", "password": "secret12"}))
    web = cluster.virtual_routers["web"]
    assert (web.version, web.advert_interval, web.authentication.type, web.authentication.password) == (
        2, 3.0, "PASS", "secret12")
    assert Cluster.model_validate(cluster.model_dump(mode="json")) == cluster
    assert VirtualRouter.model_validate(router(version=2, advert_interval="255s")).advert_interval == 255


@pytest.mark.parametrize("overrides, path, reason", [
    ({"advert_interval": "1500ms"}, "advert_interval", "whole seconds"),
    ({"advert_interval": "256s"}, "advert_interval", "255s"),
    ({"vips": ["fd00:f0c::10/64"]}, "vips", "IPv4 only"),
    ({"authentication": {"type": "AH", "password": "x"}}, "authentication.type", "AH .* not supported"),
    ({"authentication": {"type": "MD5", "password": "x"}}, "authentication.type", "PASS"),
    ({"authentication": {"password": "123456789"}}, "authentication.password", "1 to 8 bytes"),
    ({"authentication": {"password": ""}}, "authentication.password", "1 to 8 bytes"),
])
def test_version_2_refusals_name_the_field(overrides, path, reason):
    [(where, why)] = problems(v2(**overrides))
    assert where == f"cluster.virtual_routers.web.{path}"
    assert re.search(reason, why)


def test_authentication_is_version_2_only():
    [(where, why)] = problems({"virtual_routers": {"web": router(authentication={"password": "x"})}})
    assert where == "cluster.virtual_routers.web.authentication"
    assert "version = 2" in why


def test_version_3_keeps_its_interval_bound():
    [(where, why)] = problems({"virtual_routers": {"web": router(advert_interval="60s")}})
    assert where == "cluster.virtual_routers.web.advert_interval" and "40.95s" in why
