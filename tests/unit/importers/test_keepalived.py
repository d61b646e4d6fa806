"""keepalived.conf: the syntax (blocks, comments, quotes, includes) and the conversion of
vrrp_instance and virtual_server blocks into the one model, with every unmapped keyword
reported as `file:line`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fulcrum.config.errors import ConfigError
from fulcrum.config.load import load_dict
from fulcrum.importers.keepalived import convert_file
from fulcrum.importers.keepalived_syntax import KeepalivedSyntaxError, parse_file, split_line

# Written for these tests in the style of keepalived 2.2's samples; `keepalived -t`
# accepts it apart from the interface names that do not exist on the test machine.
MAIN = """\
! Configuration File for keepalived (lb0)
global_defs {
   router_id lb0
   vrrp_garp_master_refresh 60
}

vrrp_script chk_pen {
    script "/usr/bin/pgrep pen"
}

vrrp_instance VI_WEB {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 0.05
    version 3
    preempt_delay 5
    unicast_src_ip 198.18.0.2
    unicast_peer {
        198.18.0.3
    }
    authentication {
        auth_type PASS
        auth_pass secret
    }
    virtual_ipaddress {
        198.18.0.20/24 dev eth0
        198.18.0.21 dev eth0 label eth0:1   # an alias for ifconfig
    }
    virtual_ipaddress_excluded {
        fd00:f0c::20/64
    }
    track_interface {
        eth1 weight -20
        eth2
    }
    track_script { chk_pen }
    notify_master "/etc/keepalived/master.sh web"
    notify_backup /etc/keepalived/backup.sh
    notify "/usr/local/bin/state.sh"
}

vrrp_instance VI_V6 {
    state BACKUP
    interface eth0
    virtual_router_id 52
    nopreempt
    advert_int 1
    virtual_ipaddress {
        fd00:f0c::30/64
    }
    notify_fault "/etc/keepalived/fault.sh" root
}

include conf.d/*.conf
"""

SERVERS = """\
virtual_server 198.18.0.20 80 {
    delay_loop 6
    lb_algo wlc
    lb_kind DR
    persistence_timeout 300
    protocol TCP
    sorry_server 198.18.1.99 80
    real_server 198.18.1.10 80 {
        weight 2
        inhibit_on_failure
        HTTP_GET {
            url {
                path /health
                status_code 200
                digest 9b3a0c85a887a256d6939da88aabd8cd
            }
            connect_timeout 3
            retry 3
            delay_before_retry 2
        }
    }
    real_server 198.18.1.11 80 {
        weight 1
        HTTP_GET {
            url {
                path /health
                status_code 200
            }
            connect_timeout 3
            retry 3
            delay_before_retry 2
        }
    }
}
virtual_server 198.18.0.20 443 {
    delay_loop 10
    lb_algo sh
    lb_kind NAT
    protocol TCP
    real_server 198.18.1.10 443 {
        SSL_GET {
            url { path / }
            connect_timeout 5
        }
    }
}
virtual_server 198.18.0.21 25 {
    lb_algo rr
    lb_kind TUN
    protocol TCP
    real_server 198.18.1.20 25 {
        TCP_CHECK {
            connect_port 25
            connect_timeout 2
        }
    }
}
virtual_server fd00:f0c::30 3306 {
    delay_loop 5
    lb_algo lc
    protocol TCP
    real_server fd00:f0c::1:10 3306 {
        MISC_CHECK {
            misc_path "/usr/local/bin/check_mysql fd00:f0c::1:10"
            misc_timeout 4
        }
    }
}
virtual_server 198.18.0.20 53 {
    protocol UDP
    real_server 198.18.1.30 53 {
        weight 1
    }
}
"""


def write(tmp_path: Path, text: str, name: str = "keepalived.conf") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def realistic(tmp_path: Path) -> tuple[dict, list[str], Path]:
    main = write(tmp_path, MAIN)
    write(tmp_path, SERVERS, "conf.d/servers.conf")
    data, warnings = convert_file(main)
    return data, warnings, main


def warned(warnings: list[str], where: str, pattern: str) -> bool:
    return any(w.startswith(where + ":") and re.search(pattern, w) for w in warnings)


# -- syntax ------------------------------------------------------------------------------


def test_words_quotes_comments_and_braces() -> None:
    assert split_line('notify_master "/bin/x a # b" # comment', "f:1") == ["notify_master", "/bin/x a # b"]
    assert split_line("track_script { chk }! bang comment", "f:1") == ["track_script", "{", "chk", "}"]
    assert split_line('a"b c"d', "f:1") == ["ab cd"]
    with pytest.raises(KeepalivedSyntaxError, match="f:3: unterminated"):
        split_line('script "/bin/true', "f:3")


def test_blocks_nest_and_may_open_and_close_on_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "a {\n b { c d }\n e\n}\nf g\n")
    tree = parse_file(path)
    assert [s.words for s in tree] == [["a"], ["f", "g"]]
    a = tree[0]
    assert a.children is not None and [s.words for s in a.children] == [["b"], ["e"]]
    assert a.children[0].children is not None and a.children[0].children[0].words == ["c", "d"]
    assert a.children[1].where == f"{path}:3"


@pytest.mark.parametrize(("text", "message"), [
    ("vrrp_instance X {\n  state MASTER\n", r":1: block 'vrrp_instance X' is not closed"),
    ("a\n}\n", r":2: '\}' closes nothing"),
    ("include\n", r":1: include takes one file name"),
    ("include missing.conf\n", r":1: include missing.conf: no such file"),
])
def test_syntax_errors_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(KeepalivedSyntaxError, match=re.escape(str(tmp_path)) + ".*" + message):
        parse_file(write(tmp_path, text))


def test_includes_are_relative_to_the_including_file_and_loops_end(tmp_path: Path) -> None:
    write(tmp_path, "include sub/inner.conf\n")
    write(tmp_path, "include ../more/*.conf\nfrom_inner 1\n", "sub/inner.conf")
    write(tmp_path, "from_more 2\n", "more/x.conf")
    tree = parse_file(tmp_path / "keepalived.conf")
    assert [(s.words, Path(s.where.rsplit(":", 1)[0]).name) for s in tree] == [
        (["from_more", "2"], "x.conf"), (["from_inner", "1"], "inner.conf")]
    write(tmp_path, "include loop.conf\n", "loop.conf")
    with pytest.raises(KeepalivedSyntaxError, match="nested more than"):
        parse_file(tmp_path / "loop.conf")


# -- vrrp_instance -----------------------------------------------------------------------


def test_vrrp_instances_become_virtual_routers(tmp_path: Path) -> None:
    data, warnings, main = realistic(tmp_path)
    routers = data["cluster"]["virtual_routers"]
    web = routers["VI_WEB"]
    assert web["interface"] == "eth0" and web["vrid"] == 51 and web["priority"] == 150
    assert web["advert_interval"] == "0.05s" and web["preempt_delay"] == "5s"
    assert web["unicast_src"] == "198.18.0.2" and web["unicast_peers"] == ["198.18.0.3"]
    assert web["vips"] == ["198.18.0.20/24", "198.18.0.21/32"]  # no mask: a host address, as keepalived
    assert web["track"]["interfaces"] == [{"name": "eth1", "weight": -20}, {"name": "eth2", "weight": 0}]
    assert web["announce"] == {"refresh": "60s"}  # from global_defs
    assert web["notify"]["on_master"] == ["/etc/keepalived/master.sh web",
                                          "/usr/local/bin/state.sh INSTANCE VI_WEB MASTER"]
    assert web["notify"]["on_stop"] == ["/usr/local/bin/state.sh INSTANCE VI_WEB STOP"]
    # the excluded IPv6 address cannot ride in IPv4 adverts: its own router, same vrid, multicast
    v6 = routers["VI_WEB_v6"]
    assert v6["vrid"] == 51 and v6["vips"] == ["fd00:f0c::20/64"] and "unicast_peers" not in v6
    other = routers["VI_V6"]
    assert other["preempt"] is False and other["priority"] == 100 and other["vips"] == ["fd00:f0c::30/64"]
    assert other["notify"] == {"on_fault": ["/etc/keepalived/fault.sh"]}
    config = load_dict(data)
    assert config.cluster is not None and len(config.cluster.virtual_routers) == 3
    assert warned(warnings, f"{main}:11", "state MASTER")
    assert warned(warnings, f"{main}:53", "as user root")


@pytest.mark.parametrize(("lines", "priority"), [
    ("state MASTER", 255),  # keepalived makes such an instance the address owner
    ("state BACKUP", 100),
    ("", 100),
    ("state MASTER\n priority 120", 120),
])
def test_priority_follows_keepalived_defaults(tmp_path: Path, lines: str, priority: int) -> None:
    text = f"vrrp_instance X {{\n {lines}\n interface eth0\n virtual_router_id 9\n virtual_ipaddress {{ 198.18.0.9 }}\n}}\n"
    data, _ = convert_file(write(tmp_path, text))
    assert data["cluster"]["virtual_routers"]["X"]["priority"] == priority
    assert "services" not in data  # a VRRP-only node is a valid configuration
    load_dict(data)


def test_the_address_owner_is_never_lowered_by_tracking(tmp_path: Path) -> None:
    text = ("vrrp_instance X {\n state MASTER\n interface eth0\n virtual_router_id 9\n"
            " track_interface {\n  eth1 weight -30\n }\n virtual_ipaddress { 198.18.0.9 }\n}\n")
    data, warnings = convert_file(write(tmp_path, text))
    router = data["cluster"]["virtual_routers"]["X"]
    assert router["priority"] == 255 and router["track"]["interfaces"] == [{"name": "eth1", "weight": 0}]
    assert any("never lowered" in w for w in warnings)
    load_dict(data)


@pytest.mark.parametrize(("advert", "expected", "rounded"), [
    ("1", "1s", False), ("0.25", "0.25s", False), ("0.005", "0.01s", True), ("0.123", "0.12s", True),
    ("60", "40.95s", True),
])
def test_v3_advert_interval_in_centiseconds(tmp_path: Path, advert: str, expected: str, rounded: bool) -> None:
    text = (f"vrrp_instance X {{\n interface eth0\n virtual_router_id 9\n advert_int {advert}\n"
            " version 3\n virtual_ipaddress { 198.18.0.9 }\n}\n")
    path = write(tmp_path, text)
    data, warnings = convert_file(path)
    router = data["cluster"]["virtual_routers"]["X"]
    assert router["advert_interval"] == expected and "version" not in router  # the model's default, 3
    assert warned(warnings, f"{path}:4", "centiseconds") is rounded
    load_dict(data)


@pytest.mark.parametrize(("advert", "expected", "rounded"), [
    ("1", "1s", False), ("3", "3s", False), ("0.5", "1s", True), ("2.4", "2s", True), ("300", "255s", True),
])
def test_default_keepalived_is_vrrp_v2_in_whole_seconds(tmp_path: Path, advert: str, expected: str,
                                                        rounded: bool) -> None:
    # keepalived speaks VRRPv2 for IPv4 unless told `vrrp_version 3`: the node joins it as it is.
    text = (f"vrrp_instance X {{\n interface eth0\n virtual_router_id 9\n advert_int {advert}\n"
            " virtual_ipaddress { 198.18.0.9 }\n}\n")
    path = write(tmp_path, text)
    data, warnings = convert_file(path)
    router = data["cluster"]["virtual_routers"]["X"]
    assert router["version"] == 2 and router["advert_interval"] == expected
    assert warned(warnings, f"{path}:4", "whole seconds") is rounded
    assert not any("VRRPv2" in w and "version 3" in w for w in warnings)  # no advice to change keepalived
    assert load_dict(data).cluster.virtual_routers["X"].version == 2


@pytest.mark.parametrize(("global_version", "instance_version", "expected"), [
    ("", "", 2), ("vrrp_version 3", "", 3), ("", "version 3", 3), ("vrrp_version 3", "version 2", 2),
])
def test_the_version_follows_keepalived(tmp_path: Path, global_version: str, instance_version: str,
                                        expected: int) -> None:
    text = (f"global_defs {{\n {global_version}\n}}\n"
            f"vrrp_instance X {{\n interface eth0\n virtual_router_id 9\n {instance_version}\n"
            " virtual_ipaddress {\n  198.18.0.9\n }\n virtual_ipaddress_excluded {\n  fd00:f0c::9/64\n }\n}\n")
    data, _ = convert_file(write(tmp_path, text))
    routers = load_dict(data).cluster.virtual_routers
    assert routers["X"].version == expected
    assert routers["X_v6"].version == 3  # keepalived speaks VRRPv3 for IPv6 whatever it is told


def test_pass_authentication_is_kept_for_v2(tmp_path: Path) -> None:
    text = ("vrrp_instance X {\n interface eth0\n virtual_router_id 9\n authentication {\n"
            "  auth_type PASS\n  auth_pass secret1234\n }\n virtual_ipaddress { 198.18.0.9 }\n}\n")
    path = write(tmp_path, text)
    data, warnings = convert_file(path)
    router = data["cluster"]["virtual_routers"]["X"]
    # keepalived sends the first 8 bytes of a longer password
    assert router["authentication"] == {"type": "PASS", "password": "secret12"}
    assert warned(warnings, f"{path}:6", "longer than 8 bytes")
    load_dict(data)


def test_ah_authentication_leaves_the_instance_out_with_a_reason(tmp_path: Path) -> None:
    text = ("vrrp_instance X {\n interface eth0\n virtual_router_id 9\n authentication {\n"
            "  auth_type AH\n  auth_pass 1111\n }\n virtual_ipaddress { 198.18.0.9 }\n}\n"
            "vrrp_instance Y {\n interface eth0\n virtual_router_id 10\n virtual_ipaddress { 198.18.0.10 }\n}\n")
    path = write(tmp_path, text)
    data, warnings = convert_file(path)
    assert list(data["cluster"]["virtual_routers"]) == ["Y"]
    assert warned(warnings, f"{path}:5", "auth_type AH .* not supported.*left out")


def test_authentication_with_version_3_is_not_mapped(tmp_path: Path) -> None:
    text = ("vrrp_instance X {\n interface eth0\n virtual_router_id 9\n version 3\n authentication {\n"
            "  auth_type PASS\n  auth_pass secret\n }\n virtual_ipaddress { 198.18.0.9 }\n}\n")
    path = write(tmp_path, text)
    data, warnings = convert_file(path)
    assert "authentication" not in data["cluster"]["virtual_routers"]["X"]
    assert warned(warnings, f"{path}:5", "VRRPv3.*no authentication")


def test_garp_master_delay_is_the_second_announcement(tmp_path: Path) -> None:
    text = ("global_defs {\n vrrp_garp_master_delay 2\n}\n"
            "vrrp_instance X {\n interface eth0\n virtual_router_id 9\n garp_master_delay 0\n"
            " virtual_ipaddress { 198.18.0.9 }\n}\n"
            "vrrp_instance Y {\n interface eth0\n virtual_router_id 10\n virtual_ipaddress { 198.18.0.10 }\n}\n")
    data, _ = convert_file(write(tmp_path, text))
    routers = load_dict(data).cluster.virtual_routers
    assert routers["X"].announce.delay == 0 and routers["Y"].announce.delay == 2


def test_a_unicast_source_without_peers_is_multicast(tmp_path: Path) -> None:
    text = ("vrrp_instance X {\n interface eth0\n virtual_router_id 9\n unicast_src_ip 198.18.0.2\n"
            " virtual_ipaddress { 198.18.0.9 }\n}\n")
    path = write(tmp_path, text)
    data, warnings = convert_file(path)
    assert "unicast_src" not in data["cluster"]["virtual_routers"]["X"]
    assert warned(warnings, f"{path}:1", "without unicast_peer: multicast")
    load_dict(data)


def test_instances_without_addresses_or_ids_are_reported(tmp_path: Path) -> None:
    text = ("vrrp_instance A {\n interface eth0\n virtual_router_id 1\n}\n"
            "vrrp_instance B {\n interface eth0\n virtual_ipaddress { 198.18.0.9 }\n}\n"
            "vrrp_instance C {\n interface eth0\n virtual_router_id 3\n virtual_ipaddress { 198.18.0.9 }\n}\n")
    path = write(tmp_path, text)
    data, warnings = convert_file(path)
    assert list(data["cluster"]["virtual_routers"]) == ["C"]
    assert warned(warnings, f"{path}:1", "no virtual_ipaddress: left out")
    assert warned(warnings, f"{path}:5", "no interface or virtual_router_id: left out")


# -- virtual_server ----------------------------------------------------------------------


def test_virtual_servers_become_services_and_pools(tmp_path: Path) -> None:
    data, warnings, _ = realistic(tmp_path)
    servers_conf = tmp_path / "conf.d" / "servers.conf"
    assert set(data["services"]) == {"vs_198_18_0_20_80", "vs_198_18_0_20_443", "vs_198_18_0_21_25",
                                     "vs_fd00_f0c__30_3306", "vs_198_18_0_20_53"}
    web = data["pools"]["vs_198_18_0_20_80"]
    assert data["services"]["vs_198_18_0_20_80"]["listen"] == ["198.18.0.20:80"]
    # lb_kind DR runs in the kernel, which has no connection counts for wlc: wrr, with a warning
    assert data["services"]["vs_198_18_0_20_80"]["topology"] == "dsr"
    assert web["scheduler"] == "wrr"
    assert warned(warnings, f"{servers_conf}:1", "lb_algo wlc needs live connection counts.*wrr used")
    assert web["servers"] == [{"address": "198.18.1.10", "port": 80, "weight": 2},
                              {"address": "198.18.1.11", "port": 80, "weight": 1}]
    # IPVS persistence: the client's server is remembered for the timeout, the algorithm picks new clients
    assert data["services"]["vs_198_18_0_20_80"]["persistence"] == "300s" and "sticky" not in web
    assert web["emergency"] == {"address": "198.18.1.99", "port": 80}
    assert web["health"] == {"kind": "http", "path": "/health", "expect_status": [200], "interval": "6s",
                             "timeout": "3s", "rise": 1, "fall": 4}  # retry 3: down at the 4th failure
    tls = data["pools"]["vs_198_18_0_20_443"]
    assert tls["scheduler"] == "sh" and tls["health"]["kind"] == "https" and tls["health"]["timeout"] == "5s"
    smtp = data["pools"]["vs_198_18_0_21_25"]["health"]
    assert smtp["kind"] == "tcp" and smtp["port"] == 25 and smtp["interval"] == "60s"  # keepalived's default delay_loop
    mysql = data["pools"]["vs_fd00_f0c__30_3306"]
    assert data["services"]["vs_fd00_f0c__30_3306"]["listen"] == ["[fd00:f0c::30]:3306"]
    assert mysql["health"]["kind"] == "script"
    assert mysql["health"]["command"] == "/usr/local/bin/check_mysql fd00:f0c::1:10"
    assert mysql["scheduler"] == "wrr"  # lc, in the kernel (lb_kind NAT by default)
    load_dict(data)
    assert warned(warnings, f"{servers_conf}:15", "digest")
    assert warned(warnings, f"{servers_conf}:19", "delay_before_retry")
    assert data["services"]["vs_198_18_0_20_53"]["protocol"] == "udp"  # UDP through nat
    assert warned(warnings, f"{servers_conf}:49", "tunnel")


def topology_accepted(topology: str) -> bool:
    data = {"services": {"s": {"listen": ["198.18.0.20:80"], "pool": "p", "topology": topology}},
            "pools": {"p": {"servers": ["198.18.1.10:80"]}}}
    try:
        load_dict(data)
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize(("kind", "topology"), [("DR", "dsr"), ("NAT", "nat")])
def test_lvs_topology_kept_or_mapped_to_the_proxy_with_a_warning(tmp_path: Path, kind: str, topology: str) -> None:
    text = (f"virtual_server 198.18.0.20 80 {{\n lb_kind {kind}\n protocol TCP\n"
            " real_server 198.18.1.10 80 {\n }\n}\n")
    path = write(tmp_path, text)
    data, warnings = convert_file(path)
    service = data["services"]["vs_198_18_0_20_80"]
    if topology_accepted(topology):
        assert service["topology"] == topology and not warned(warnings, f"{path}:2", "userspace proxy")
    else:
        assert service["topology"] == "proxy"
        assert warned(warnings, f"{path}:2", "mapped to fulcrum's userspace proxy.*client IP")
    pool = data["pools"]["vs_198_18_0_20_80"]
    # keepalived's default lb_algo wlc; the kernel has no connection counts, so wrr with a warning
    assert pool["scheduler"] == "wrr" and pool["health"] == {"kind": "none"}
    assert warned(warnings, f"{path}:1", "lb_algo wlc needs live connection counts")
    load_dict(data)


def test_virtual_server_groups_and_firewall_marks(tmp_path: Path) -> None:
    text = ("virtual_server_group web {\n 198.18.0.20-22 80\n fwmark 7\n}\n"
            "virtual_server group web {\n protocol TCP\n real_server 198.18.1.10 80 {\n }\n}\n"
            "virtual_server fwmark 7 {\n protocol TCP\n real_server 198.18.1.10 80 {\n }\n}\n"
            "virtual_server group nothere {\n protocol TCP\n}\n")
    path = write(tmp_path, text)
    data, warnings = convert_file(path)
    assert data["services"]["vs_group_web"]["listen"] == ["198.18.0.20:80", "198.18.0.21:80", "198.18.0.22:80"]
    assert len(data["services"]) == 1
    assert warned(warnings, f"{path}:3", "fwmark 7 is not mapped")
    assert warned(warnings, f"{path}:10", "firewall marks: left out")
    assert warned(warnings, f"{path}:15", "no such virtual_server_group")
    load_dict(data)


def test_a_missing_protocol_is_tcp_with_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, "virtual_server 198.18.0.20 80 {\n real_server 198.18.1.10 80 {\n }\n}\n")
    data, warnings = convert_file(path)
    assert "vs_198_18_0_20_80" in data["services"]
    assert warned(warnings, f"{path}:1", "no protocol.*UDP.*TCP")


UNMAPPED = """\
global_defs {
    notification_email_from lb0@example.org
}
vrrp_sync_group G {
    group { X }
}
vrrp_instance X {
    interface eth0
    virtual_router_id 9
    use_vmac
    virtual_ipaddress {
        198.18.0.9/24 dev eth1 scope global home
    }
    track_interface {
        eth1 weight 10 reverse
    }
    unicast_peer {
        198.18.0.3 min_ttl 250
    }
    strict_mode
}
virtual_server 198.18.0.9 80 {
    protocol TCP
    lb_algo rr
    ha_suspend
    persistence_granularity 255.255.255.0
    real_server 198.18.1.10 80 {
        notify_down /bin/down.sh
        DNS_CHECK {
            type A
        }
        TCP_CHECK {
            connect_ip 198.18.1.11
            warmup 5
        }
    }
    real_server 198.18.1.11 80 {
        HTTP_GET {
            url { path /a }
            url { path /b }
        }
    }
}
linkbeat_interfaces { eth0 }
@lb1 vrrp_garp_interval 1
"""


def test_every_unmapped_keyword_is_a_warning_with_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, UNMAPPED)
    data, warnings = convert_file(path)
    expected_lines = [2, 4, 10, 12, 15, 18, 20, 25, 26, 28, 29, 33, 34, 38, 40, 44, 45]
    for line in expected_lines:
        assert any(w.startswith(f"{path}:{line}:") for w in warnings), (line, warnings)
    assert all(re.match(re.escape(str(path)) + r":\d+: ", w) for w in warnings)
    load_dict(data)


def test_nothing_to_import_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(KeepalivedSyntaxError, match="nothing to import"):
        convert_file(write(tmp_path, "global_defs {\n router_id x\n}\n"))


def test_values_the_model_refuses_are_config_errors(tmp_path: Path) -> None:
    text = "vrrp_instance X {\n interface eth0\n virtual_router_id 300\n virtual_ipaddress { 198.18.0.9 }\n}\n"
    with pytest.raises(ConfigError, match="vrid"):
        convert_file(write(tmp_path, text))


SAMPLES = sorted(Path("/usr/share/doc/keepalived/samples").glob("keepalived.conf.*"))


@pytest.mark.skipif(not SAMPLES, reason="Debian's keepalived samples are not installed")
@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_keepalived_samples_convert_or_are_refused_with_a_reason(sample: Path) -> None:
    """keepalived's own sample files: a valid configuration, or a refusal that says why."""
    try:
        data, warnings = convert_file(sample)
    except KeepalivedSyntaxError as err:
        assert "nothing to import" in str(err) and f"\n  {sample}:" in str(err)
        return
    load_dict(data)
    assert warnings and all(re.match(re.escape(str(sample)) + r":\d+: ", w) for w in warnings)


def test_a_local_real_server_keeps_the_proxy_with_the_reason(tmp_path: Path) -> None:
    # IPVS delivers to a real server on the balancer itself; nftables cannot forward to
    # 127.0.0.1, so such a service runs in the userspace proxy, persistence as its client table
    text = ("virtual_server 198.18.0.20 80 {\n lb_kind NAT\n protocol TCP\n persistence_timeout 60\n"
            " real_server 127.0.0.1 8080 {\n }\n}\n")
    path = write(tmp_path, text)
    data, warnings = convert_file(path)
    service = data["services"]["vs_198_18_0_20_80"]
    assert service["topology"] == "proxy" and "persistence" not in service
    assert data["pools"]["vs_198_18_0_20_80"]["sticky"]["mode"] == "source"
    assert warned(warnings, f"{path}:2", "loopback server 127.0.0.1:8080.*userspace proxy")
    load_dict(data)
