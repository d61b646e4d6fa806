"""Imported configurations with virtual routers run as is: `fulcrum run -c OUT` inside a
network namespace this test creates (per-run name, addresses from 198.18.0.0/15, removed
on teardown) takes the VIP, serves on it and runs the managed commands."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.helpers import FULCRUM
from tests.integration.test_http_support import HERE as BACKEND_SCRIPT

pytestmark = pytest.mark.netns

PREFIX = f"fi{os.getpid()}"
BACKEND_PORT, SERVICE_PORT = 9101, 8080


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=check)


def unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create a network namespace"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    return None


class Namespace:
    def __init__(self, name: str):
        self.name = name
        self.processes: list[subprocess.Popen[bytes]] = []

    def build(self) -> None:
        ip("netns", "add", self.name)
        ip("-n", self.name, "link", "set", "lo", "up")
        # a veth pair made inside the namespace: the root namespace is never touched
        ip("-n", self.name, "link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
        ip("-n", self.name, "addr", "add", "198.18.0.11/24", "dev", "eth0")
        ip("-n", self.name, "link", "set", "peer0", "up")
        ip("-n", self.name, "link", "set", "eth0", "up")

    def popen(self, *command: str, log: Path) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            process = subprocess.Popen(["ip", "netns", "exec", self.name, *command], stdout=out,
                                       stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def has_address(self, address: str) -> bool:
        shown = ip("-n", self.name, "-o", "addr", "show", "dev", "eth0").stdout
        return f" {address}/" in shown

    def fetch(self, address: str, port: int) -> str:
        client = ("import socket,sys\n"
                  "s=socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=3)\n"
                  "s.sendall(b'GET /name HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n')\n"
                  "d=b''\nwhile (c:=s.recv(4096)): d+=c\n"
                  "print(d.rsplit(b'\\r\\n\\r\\n',1)[-1].decode())\n")
        result = subprocess.run(["ip", "netns", "exec", self.name, sys.executable, "-c", client, address, str(port)],
                                capture_output=True, text=True, timeout=10)
        return result.stdout.strip() if result.returncode == 0 else ""

    def remove(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        for pid in ip("netns", "pids", self.name, check=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        ip("netns", "del", self.name, check=False)


@pytest.fixture
def netns(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Namespace]:
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    ns = Namespace(f"{PREFIX}{request.node.name[-8:]}")
    try:
        ns.build()
        ns.popen(sys.executable, str(BACKEND_SCRIPT), "rs", str(BACKEND_PORT), "rs", log=tmp_path / "backend.log")
        yield ns
    finally:
        ns.remove()


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


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


def test_keepalived_import_takes_the_vip_and_serves_on_it(netns: Namespace, tmp_path: Path) -> None:
    conf, out = tmp_path / "keepalived.conf", tmp_path / "fulcrum.toml"
    conf.write_text(KEEPALIVED)
    convert("keepalived", str(conf), "-o", str(out))
    node = netns.popen(FULCRUM, "run", "-c", str(out), log=tmp_path / "fulcrum.log")
    # state MASTER without a priority: the address owner (255), master at once
    wait_for(lambda: netns.has_address("198.18.0.100"), 15, "the VIP")
    wait_for(lambda: netns.fetch("198.18.0.100", SERVICE_PORT) == "rs", 15, "the service on the VIP")
    node.send_signal(signal.SIGTERM)
    node.wait(timeout=30)
    assert not netns.has_address("198.18.0.100")  # handed over on stop


HA_CF = """\
keepalive 100ms
deadtime 1
ucast eth0 198.18.0.12
auto_failback on
node lb0
node lb1
"""


def test_heartbeat_import_takes_the_vip_and_runs_the_resources(netns: Namespace, tmp_path: Path) -> None:
    scripts = tmp_path / "resource.d"
    scripts.mkdir()
    (scripts / "pen").write_text(f"#!/bin/sh\n[ \"$1\" = start ] && pen -r 198.18.0.20:{SERVICE_PORT} "
                                 f"127.0.0.1:{BACKEND_PORT}\n")
    marker = tmp_path / "httpd.calls"
    (scripts / "httpd").write_text(f"#!/bin/sh\necho \"$1\" >> {marker}\n")
    (scripts / "httpd").chmod(0o755)
    (tmp_path / "ha.cf").write_text(HA_CF)
    (tmp_path / "haresources").write_text("lb0 IPaddr::198.18.0.20/24/eth0 pen httpd\n")
    out = tmp_path / "lb0.toml"
    convert("heartbeat", str(tmp_path / "ha.cf"), str(tmp_path / "haresources"), "-o", str(out), "--node", "lb0")
    node = netns.popen(FULCRUM, "run", "-c", str(out), log=tmp_path / "fulcrum.log")
    # no peer answers: master after Master_Down_Interval (about deadtime)
    wait_for(lambda: netns.has_address("198.18.0.20"), 15, "the VIP")
    wait_for(lambda: netns.fetch("198.18.0.20", SERVICE_PORT) == "rs", 15, "pen's service on the VIP")
    wait_for(lambda: marker.exists() and "start" in marker.read_text().split(), 15, "httpd start")
    node.send_signal(signal.SIGTERM)
    node.wait(timeout=30)
    assert not netns.has_address("198.18.0.20")
    assert marker.read_text().split()[-1] == "stop"
