"""Imported configurations with virtual routers run as is: `fulcrum run -c OUT` on lb0 of
the namespace lab takes the VIP, serves on it (the client reaches it over the bridge) and
runs the managed commands; SIGTERM hands the VIP over."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from conftest import Lab, Node
from tests.support import FULCRUM, wait_for

BACKEND_PORT, SERVICE_PORT = 9101, 8080

# The lab's backend, as seen from lb0: answers every HTTP request with "rs".
BACKEND = """
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen(64)
while True:
    conn, _ = server.accept()
    conn.recv(65536)
    conn.sendall(b"HTTP/1.0 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nrs")
    conn.close()
"""


def start_backend(node: Node, workdir: Path) -> None:
    script = workdir / "backend.py"
    script.write_text(BACKEND)
    node.popen(sys.executable, str(script), str(BACKEND_PORT), log=workdir / "backend.log")


def fetch(client: Node, address: str, port: int) -> str:
    """The body a GET through `address:port` returns to the client ("" on failure)."""
    script = ("import socket,sys\n"
              "s=socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=3)\n"
              "s.sendall(b'GET /name HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n')\n"
              "d=b''\nwhile (c:=s.recv(4096)): d+=c\n"
              "print(d.rsplit(b'\\r\\n\\r\\n',1)[-1].decode())\n")
    result = client.run(sys.executable, "-c", script, address, str(port), check=False)
    return result.stdout.strip() if result.returncode == 0 else ""


def convert(*args: str) -> None:
    result = subprocess.run([FULCRUM, "import", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


KEEPALIVED = f"""\
vrrp_instance VI_1 {{
    state MASTER
    interface eth0
    virtual_router_id 51
    advert_int 0.1
    version 3
    virtual_ipaddress {{
        198.18.0.100/24
    }}
}}
virtual_server 198.18.0.100 {SERVICE_PORT} {{
    lb_algo rr
    protocol TCP
    real_server 127.0.0.1 {BACKEND_PORT} {{
        TCP_CHECK {{
            connect_timeout 1
        }}
    }}
}}
"""


def test_keepalived_import_takes_the_vip_and_serves_on_it(lab: Lab) -> None:
    lb0, workdir = lab["lb0"], lab.workdir
    start_backend(lb0, workdir)
    conf, out = workdir / "keepalived.conf", workdir / "fulcrum.toml"
    conf.write_text(KEEPALIVED)
    convert("keepalived", str(conf), "-o", str(out))
    node = lb0.popen(FULCRUM, "run", "-c", str(out), log=workdir / "fulcrum.log")
    # state MASTER without a priority: the address owner (255), master at once
    wait_for(lambda: lb0.has_address("198.18.0.100"), 15, what="the VIP")
    wait_for(lambda: fetch(lab["client"], "198.18.0.100", SERVICE_PORT) == "rs", 15,
             what="the service on the VIP")
    node.send_signal(signal.SIGTERM)
    node.wait(timeout=30)
    assert not lb0.has_address("198.18.0.100")  # handed over on stop


HA_CF = """\
keepalive 100ms
deadtime 1
ucast eth0 198.18.0.2
auto_failback on
node lb0
node lb1
"""


def test_heartbeat_import_takes_the_vip_and_runs_the_resources(lab: Lab) -> None:
    lb0, workdir = lab["lb0"], lab.workdir
    start_backend(lb0, workdir)
    scripts = workdir / "resource.d"
    scripts.mkdir()
    (scripts / "pen").write_text(f"#!/bin/sh\n[ \"$1\" = start ] && pen -r 198.18.0.20:{SERVICE_PORT} "
                                 f"127.0.0.1:{BACKEND_PORT}\n")
    marker = workdir / "httpd.calls"
    (scripts / "httpd").write_text(f"#!/bin/sh\necho \"$1\" >> {marker}\n")
    (scripts / "httpd").chmod(0o755)
    (workdir / "ha.cf").write_text(HA_CF)
    (workdir / "haresources").write_text("lb0 IPaddr::198.18.0.20/24/eth0 pen httpd\n")
    out = workdir / "lb0.toml"
    convert("heartbeat", str(workdir / "ha.cf"), str(workdir / "haresources"), "-o", str(out),
            "--node", "lb0")
    node = lb0.popen(FULCRUM, "run", "-c", str(out), log=workdir / "fulcrum.log")
    # no peer answers: master after Master_Down_Interval (about deadtime)
    wait_for(lambda: lb0.has_address("198.18.0.20"), 15, what="the VIP")
    wait_for(lambda: fetch(lab["client"], "198.18.0.20", SERVICE_PORT) == "rs", 15,
             what="pen's service on the VIP")
    wait_for(lambda: marker.exists() and "start" in marker.read_text().split(), 15,
             what="httpd start")
    node.send_signal(signal.SIGTERM)
    node.wait(timeout=30)
    assert not lb0.has_address("198.18.0.20")
    assert marker.read_text().split()[-1] == "stop"
