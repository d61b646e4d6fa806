"""`fulcrum import keepalived|heartbeat ... -o OUT` through the command line: warnings on
stderr with file:line, `fulcrum check` accepts the output, `fulcrum run -c OUT` runs it as
is (services on loopback here; VIPs in tests/integration/test_import_cli_netns.py)."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.integration.test_http_support import BackendProcess
from tests.support import FulcrumProcess, free_port, run_fulcrum

KEEPALIVED = """\
! lb0: two web servers behind a TCP service, checked with HTTP_GET
global_defs {{
    router_id lb0
}}
virtual_server 127.0.0.1 {port} {{
    delay_loop 1
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 127.0.0.1 {a} {{
        weight 1
        HTTP_GET {{
            url {{
                path /name
                status_code 200
            }}
            connect_timeout 1
            retry 0
        }}
    }}
    real_server 127.0.0.1 {b} {{
        weight 1
        HTTP_GET {{
            url {{
                path /name
                status_code 200
            }}
            connect_timeout 1
            retry 0
        }}
    }}
}}
"""


def fetch_name(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /name HTTP/1.0\r\nHost: x\r\n\r\n")
        sock.settimeout(5)
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    return data.rsplit(b"\r\n\r\n", 1)[-1].decode()


def test_keepalived_virtual_server_imports_and_runs(tmp_path: Path) -> None:
    a, b = BackendProcess("a"), BackendProcess("b")
    port = free_port()
    conf = tmp_path / "keepalived.conf"
    conf.write_text(KEEPALIVED.format(port=port, a=a.port, b=b.port))
    out = tmp_path / "fulcrum.toml"
    node = None
    try:
        converted = run_fulcrum("import", "keepalived", str(conf), "-o", str(out))
        assert converted.returncode == 0, converted.stderr
        assert f"warning: {conf}:3: router_id lb0" in converted.stderr
        assert f"warning: {conf}:8: lb_kind NAT" in converted.stderr  # kept, or mapped to the proxy with a warning
        checked = run_fulcrum("check", "-c", str(out))
        assert checked.returncode == 0, checked.stderr
        node = FulcrumProcess(["run", "-c", str(out)], tmp_path / "fulcrum.log")
        node.wait_listening(port)
        assert sorted(fetch_name(port) for _ in range(4)) == ["a", "a", "b", "b"]  # lb_algo rr
        a.stop()  # HTTP_GET (delay_loop 1, retry 0) takes it out: every request reaches b
        node.wait_for(lambda: fetch_name(port) == "b" and fetch_name(port) == "b", 15, what="only b answering")
        assert [fetch_name(port) for _ in range(4)] == ["b"] * 4
    finally:
        if node is not None:
            node.stop()
        a.stop()
        b.stop()


HA_CF = """\
keepalive 1
deadtime 10
initdead 30
udpport 694
ucast eth0 198.18.0.12
auto_failback off
node lb0
node lb1
"""
PEN_SCRIPT = """\
#!/bin/sh
case "$1" in
start) pen -r -p /run/pen.pid 198.18.0.20:80 198.18.1.10:80 198.18.1.11:80 ;;
stop) kill "$(cat /run/pen.pid)" ;;
esac
"""


def test_heartbeat_files_import_and_check(tmp_path: Path) -> None:
    (tmp_path / "ha.cf").write_text(HA_CF)
    (tmp_path / "haresources").write_text("lb0 198.18.0.20 pen httpd\n")
    (tmp_path / "resource.d").mkdir()
    (tmp_path / "resource.d" / "pen").write_text(PEN_SCRIPT)
    out = tmp_path / "lb1.toml"
    converted = run_fulcrum("import", "heartbeat", str(tmp_path / "ha.cf"), str(tmp_path / "haresources"),
                        "-o", str(out), "--node", "lb1", "--interface", "eth0")
    assert converted.returncode == 0, converted.stderr
    assert f"warning: {tmp_path / 'ha.cf'}:4: udpport" in converted.stderr
    assert "resource pen: its command line" in converted.stderr
    assert "resource httpd" in converted.stderr
    checked = run_fulcrum("check", "-c", str(out))
    assert checked.returncode == 0, checked.stderr
    assert 'listen = [\n    "198.18.0.20:80",' in checked.stdout
    assert "priority = 100" in checked.stdout and "preempt = false" in checked.stdout


def test_errors_exit_2_naming_the_file_and_line(tmp_path: Path) -> None:
    conf = tmp_path / "keepalived.conf"
    conf.write_text("vrrp_instance X {\n  interface eth0\n")
    out = tmp_path / "out.toml"
    result = run_fulcrum("import", "keepalived", str(conf), "-o", str(out))
    assert result.returncode == 2 and f"{conf}:1: block 'vrrp_instance X' is not closed" in result.stderr
    assert not out.exists()
    conf.write_text("vrrp_instance X {\n interface eth0\n virtual_router_id 0\n virtual_ipaddress { 198.18.0.9 }\n}\n")
    result = run_fulcrum("import", "keepalived", str(conf), "-o", str(out))
    assert result.returncode == 2 and "cluster.virtual_routers.X.vrid" in result.stderr
    (tmp_path / "ha.cf").write_text(HA_CF)
    (tmp_path / "haresources").write_text("lb0 198.18.0.20\n")
    result = run_fulcrum("import", "heartbeat", str(tmp_path / "ha.cf"), str(tmp_path / "haresources"),
                     "-o", str(out), "--node", "lb7")
    assert result.returncode == 2 and f"{tmp_path / 'ha.cf'}: --node lb7: not a node" in result.stderr
    assert not out.exists()
