"""Pulse/Piranha's lvs.cf for one of its two nodes: VRRP routers for the virtual addresses
and nat_router, kernel services from the virtual blocks, nanny's checks as health checks,
and file:line warnings for what has no fulcrum meaning."""

from __future__ import annotations

from pathlib import Path

import pytest

from fulcrum.config.load import load_dict
from fulcrum.importers.piranha import PiranhaError, convert_file

FIXTURE = Path(__file__).parents[2] / "fixtures" / "lvs" / "lvs.cf"

MINIMAL = """\
primary = 198.18.0.1
backup = 198.18.0.2
service = lvs
network = direct
virtual web {{
     active = 1
     address = 198.18.0.100 eth0:1
     port = 80
{extra}     server rs1 {{
         address = 198.18.0.21
         active = 1
         weight = 1
     }}
}}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lvs.cf"
    path.write_text(text)
    return path


def test_fixture_primary_and_backup() -> None:
    primary, warnings = convert_file(FIXTURE, "primary")
    backup, _ = convert_file(FIXTURE, "192.168.10.3")  # the backup named by its address
    config = load_dict(primary)
    assert set(config.services) == {"http", "https"}  # ftp is `active = 0`
    http = config.services["http"]
    assert (http.topology, [str(e) for e in http.listen]) == ("nat", ["192.168.10.100:80"])
    assert config.services["https"].persistence == 300
    pool = config.pools["http"]
    assert [(s.address, s.port, s.weight, s.state) for s in pool.servers] == [
        ("10.0.0.11", 80, 1, "enabled"), ("10.0.0.12", 80, 2, "enabled"), ("10.0.0.13", 80, 1, "disabled")]
    assert pool.scheduler == "wrr"
    # nanny: GET / every `timeout` (6 s), out at the first failure, back after `reentry` (15 s)
    assert (pool.health.kind, pool.health.method, pool.health.path) == ("http", "GET", "/")
    assert (pool.health.interval, pool.health.fall, pool.health.rise) == (6.0, 1, 3)
    assert config.pools["https"].health.kind == "tcp"
    routers = config.cluster.virtual_routers  # type: ignore[union-attr]
    assert [str(v) for v in routers["eth0"].vips] == ["192.168.10.100/24"]
    assert [str(v) for v in routers["eth1"].vips] == ["10.0.0.254/24"]  # nat_router: the servers' gateway
    assert routers["eth0"].priority == 150
    assert str(routers["eth0"].unicast_src) == "192.168.10.2"
    assert [str(p) for p in routers["eth0"].unicast_peers] == ["192.168.10.3"]
    # deadtime 18: the backup declares the master dead after about 18 s, as pulse did
    assert routers["eth0"].advert_interval == 4.98
    other = backup["cluster"]["virtual_routers"]["eth0"]
    assert (other["priority"], other["unicast_src"], other["unicast_peers"]) == (100, "192.168.10.3", ["192.168.10.2"])
    text = "\n".join(warnings)
    for line, what in ((9, "heartbeat_port = 539"), (15, "debug_level = NONE"), (27, "scheduler = wlc"),
                       (24, 'expect = "HTTP"'), (73, "virtual ftp: active = 0: left out"),
                       (3, "primary_private"), (11, "keepalive 6, deadtime 18")):
        assert f"{FIXTURE}:{line}: {what}" in text, what


def test_syncdaemon_becomes_conntrackd_on_the_private_link(tmp_path: Path) -> None:
    text = FIXTURE.read_text().replace("syncdaemon = 0", "syncdaemon = 1\nsyncd_iface = eth2")
    data, _ = convert_file(write(tmp_path, text), "backup")
    assert data["cluster"]["conntrack"] == {"interface": "eth2", "address": "10.0.0.3", "peer": "10.0.0.2"}
    load_dict(data)


def test_direct_routing_send_expect_and_send_program(tmp_path: Path) -> None:
    extra = ('     send = "GET /health HTTP/1.0\\r\\n\\r\\n"\n     expect = "HTTP/1.1 200 OK"\n'
             "     timeout = 2\n     reentry = 10\n")
    data, warnings = convert_file(write(tmp_path, MINIMAL.format(extra=extra)), "primary")
    assert data["services"]["web"]["topology"] == "dsr"
    health = data["pools"]["web"]["health"]
    assert (health["kind"], health["path"], health["expect_status"]) == ("http", "/health", [200])
    assert (health["interval"], health["rise"], health["fall"]) == ("2s", 5, 1)
    load_dict(data)
    data, _ = convert_file(write(tmp_path, MINIMAL.format(extra='     send_program = "/usr/local/bin/check %h"\n')),
                           "primary")
    assert data["pools"]["web"]["health"]["kind"] == "script"
    assert data["pools"]["web"]["health"]["command"] == "/usr/local/bin/check %h"
    data, warnings = convert_file(write(tmp_path, MINIMAL.format(extra='     send = "quit"\n     expect = "220"\n')),
                                  "primary")
    assert data["pools"]["web"]["health"]["kind"] == "tcp"
    assert any("send/expect on a non-HTTP service" in w for w in warnings)


@pytest.mark.parametrize(("change", "error"), [
    (("--node", "lb9"), "--node lb9: give `primary`, `backup` or one of their addresses"),
    (("service = lvs", "service = fos"), ":3: service = fos: only `service = lvs`"),
    (("network = direct", "network = bridge"), ":4: network = bridge: expected nat, direct or tunnel"),
    (("address = 198.18.0.100 eth0:1", "address = 198.18.0.100"), ":7: address needs `ADDRESS DEVICE[:N]`"),
    (("port = 80\n", "port = http\n"), ":8: port 'http' is not a number"),
    (("     }\n}\n", "     }\n"), ":5: virtual web: '{' is never closed"),
    (("primary = 198.18.0.1\n", "primary: 198.18.0.1\n"), ":1: expected `key = value`"),
])
def test_refused_files_name_file_and_line(tmp_path: Path, change: tuple[str, str], error: str) -> None:
    text, node = MINIMAL.format(extra=""), "primary"
    if change[0] == "--node":
        node = change[1]
    else:
        assert change[0] in text
        text = text.replace(change[0], change[1], 1)
    path = write(tmp_path, text)
    with pytest.raises(PiranhaError) as err:
        convert_file(path, node)
    assert str(err.value).startswith(str(path))
    assert error in str(err.value)
