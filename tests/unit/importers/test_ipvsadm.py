"""ipvsadm-save (`ipvsadm -S -n`) rules replayed as ipvsadm-restore would, mapped onto
kernel services; what cannot run is warned with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from fulcrum.config.errors import ConfigError
from fulcrum.config.load import load_dict
from fulcrum.importers.ipvsadm import IpvsadmError, convert_file

FIXTURE = Path(__file__).parents[2] / "fixtures" / "lvs" / "ipvsadm.rules"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ipvs.rules"
    path.write_text(text)
    return path


def test_fixture_converts_to_a_config_the_model_accepts() -> None:
    data, warnings = convert_file(FIXTURE)
    config = load_dict(data)
    services = config.services
    assert set(services) == {"tcp_192_168_10_100_80", "tcp_192_168_10_100_443", "udp_192_168_10_100_53",
                             "tcp_192_168_10_101_25", "tcp_2001_db8_10_100_80", "tcp_192_168_10_102_80"}
    web = services["tcp_192_168_10_100_80"]
    assert (web.topology, web.protocol, [str(e) for e in web.listen]) == ("nat", "tcp", ["192.168.10.100:80"])
    assert [(s.address, s.port, s.weight) for s in config.pools[web.pool].servers] == [
        ("10.0.0.11", 80, 1), ("10.0.0.12", 80, 1), ("10.0.0.13", 80, 2)]
    assert config.pools[web.pool].scheduler == "wrr"  # wlc cannot run in the kernel
    assert services["tcp_192_168_10_100_443"].persistence == 300
    assert services["udp_192_168_10_100_53"].protocol == "udp"
    assert config.pools["udp_192_168_10_100_53"].scheduler == "rr"
    smtp = config.pools["tcp_192_168_10_101_25"]
    assert services["tcp_192_168_10_101_25"].topology == "dsr"
    assert [(s.weight, s.max_connections) for s in smtp.servers] == [(1, 200), (0, 0)]
    assert services["tcp_2001_db8_10_100_80"].topology == "dsr"
    assert [str(e) for e in services["tcp_2001_db8_10_100_80"].listen] == ["[2001:db8:10::100]:80"]
    assert config.pools["tcp_2001_db8_10_100_80"].scheduler == "sh"
    assert services["tcp_192_168_10_102_80"].topology == "fullnat"  # -i
    assert all(pool.health.kind == "none" for pool in config.pools.values())  # IPVS checks nothing
    text = "\n".join(warnings)
    assert f"{FIXTURE}:1: -s wlc: the kernel data plane keeps no connection counts" in text
    assert f"{FIXTURE}:12: -y 150:" in text
    assert f"{FIXTURE}:12: -x 200:" in text  # not enforced by kernel topologies
    assert f"{FIXTURE}:17: -f 1: fulcrum has no firewall-mark services" in text
    assert f"{FIXTURE}:21: -i (IP-in-IP tunnelling)" in text


def test_edits_and_deletes_are_replayed_in_order(tmp_path: Path) -> None:
    path = write(tmp_path, """\
ipvsadm -C
-A -t 198.18.0.100:80 -s rr
-a -t 198.18.0.100:80 -r 198.18.0.21:80 -m -w 1
-a -t 198.18.0.100:80 -r 198.18.0.22:80 -m -w 1
-e -t 198.18.0.100:80 -r 198.18.0.22:80 -m -w 5
-d -t 198.18.0.100:80 -r 198.18.0.21:80
-E -t 198.18.0.100:80 -s mh -p
-a -t 198.18.0.100:80 -r 198.18.0.23:80 -m -w 4
-e -t 198.18.0.100:80 -r 198.18.0.23:80 -m
--add-service --udp-service 198.18.0.100:53 --scheduler=sh
-a -u 198.18.0.100:53 -r 198.18.0.21 -m
-D -u 198.18.0.100:53
""")
    data, warnings = convert_file(path)
    assert warnings == []
    assert list(data["services"]) == ["tcp_198_18_0_100_80"]
    assert data["services"]["tcp_198_18_0_100_80"]["persistence"] == "300s"  # -p without a timeout
    assert data["pools"]["tcp_198_18_0_100_80"]["scheduler"] == "mh"
    # -e sets every attribute anew: without -w the weight is ipvsadm's default, 1
    assert data["pools"]["tcp_198_18_0_100_80"]["servers"] == [{"address": "198.18.0.22", "port": 80, "weight": 5},
                                                               {"address": "198.18.0.23", "port": 80, "weight": 1}]


def test_forwarding_per_server_and_dsr_ports(tmp_path: Path) -> None:
    path = write(tmp_path, """\
-A -t 198.18.0.100:80 -s rr
-a -t 198.18.0.100:80 -r 198.18.0.21:8080 -g -w 1
-a -t 198.18.0.100:80 -r 198.18.0.22:80 -m -w 1
""")
    data, warnings = convert_file(path)
    assert data["services"]["tcp_198_18_0_100_80"]["topology"] == "dsr"
    assert [s["port"] for s in data["pools"]["tcp_198_18_0_100_80"]["servers"]] == [80, 80]
    assert f"{path}:2: -r 198.18.0.21:8080 -g: direct routing keeps the virtual service's port 80" in "\n".join(warnings)
    assert any(w.startswith(f"{path}:3: nat forwarding differs from the service's first real server")
               for w in warnings)


@pytest.mark.parametrize(("text", "error"), [
    ("-A -t 198.18.0.100:80 -s nosuch\n", ":1: -s nosuch: not an IPVS scheduler"),
    ("-A -t 198.18.0.100:80\n-A -t 198.18.0.100:80\n", ":2: -A -t 198.18.0.100:80: service already exists"),
    ("-a -t 198.18.0.100:80 -r 198.18.0.21:80\n", ":1: -a -t 198.18.0.100:80: no such service"),
    ("-A -t www.example.com:80\n", ":1: -t www.example.com:80: expected ADDRESS:PORT"),
    ("-A -t 198.18.0.100:80 --frobnicate\n", ":1: '--frobnicate' is not an ipvsadm option"),
    ("-A -t 198.18.0.100:80\n-a -t 198.18.0.100:80 -r 198.18.0.21:80 -w 70000\n", ":2: -w 70000: must be"),
    ("-t 198.18.0.100:80\n", ":1: no command"),
    ("-A -t 198.18.0.100:80\n", "no virtual service fulcrum can run"),
])
def test_refused_lines_name_file_and_line(tmp_path: Path, text: str, error: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(IpvsadmError) as err:
        convert_file(path)
    assert str(err.value).startswith(str(path))
    assert error in str(err.value)



def test_tcp_and_udp_services_share_a_vip_and_port(tmp_path: Path) -> None:
    # DNS: `-t` and `-u` on one VIP:53 (the listen check once treated them as one socket)
    path = write(tmp_path, """\
-A -t 198.18.0.53:53 -s rr
-a -t 198.18.0.53:53 -r 198.18.0.21:53 -m -w 1
-A -u 198.18.0.53:53 -s rr
-a -u 198.18.0.53:53 -r 198.18.0.21:53 -m -w 1
""")
    data, _ = convert_file(path)
    config = load_dict(data)
    assert {(s.protocol, str(s.listen[0])) for s in config.services.values()} == {
        ("tcp", "198.18.0.53:53"), ("udp", "198.18.0.53:53")}
    data["services"]["udp_198_18_0_53_53"]["protocol"] = "tcp"  # two tcp services on one port: refused
    with pytest.raises(ConfigError) as err:
        load_dict(data)
    assert "198.18.0.53:53 is already used by service 'tcp_198_18_0_53_53'" in str(err.value)
