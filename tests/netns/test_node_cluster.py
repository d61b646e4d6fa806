"""`fulcrum run` with a cluster section: the node serves a TCP service on the VIP, its
VRRP engine (own process) owns the VIP, and clients reach the service through the
other node when the master's fulcrum process is killed."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from conftest import VIP4, VIP6, Lab, Node, wait_for
from vrrp_lab import NAME_SERVER, PORT, ask_vip

FULCRUM = str(Path(sys.executable).with_name("fulcrum"))
BACKEND_PORT = 9000


def node_toml(lab: Lab, priority: int) -> str:
    servers = ", ".join(f'"{lab[rs].v4}:{BACKEND_PORT}"' for rs in ("rs1", "rs2"))
    return f"""
[services.web]
listen = ["{VIP4}:{PORT}", "[{VIP6}]:{PORT}"]
pool = "web"

[pools.web]
servers = [{servers}]
health = {{ kind = "tcp", interval = "200ms", timeout = "200ms" }}

[cluster.virtual_routers.v4]
vrid = 61
interface = "eth0"
priority = {priority}
advert_interval = "100ms"
vips = ["{VIP4}/24"]

[cluster.virtual_routers.v6]
vrid = 61
interface = "eth0"
priority = {priority}
advert_interval = "100ms"
vips = ["{VIP6}/64"]
"""


def start_fulcrum(node: Node, lab: Lab, priority: int):  # type: ignore[no-untyped-def]
    config = lab.workdir / f"{node.name}.toml"
    config.write_text(node_toml(lab, priority))
    return node.popen(FULCRUM, "run", "-c", str(config), log=lab.workdir / f"{node.name}.log")


def test_service_on_the_vip_moves_when_the_master_process_is_killed(lab: Lab) -> None:
    script = lab.workdir / "name_server.py"
    script.write_text(NAME_SERVER)
    for rs in ("rs1", "rs2"):
        lab[rs].popen(sys.executable, str(script), rs, lab[rs].v4, str(BACKEND_PORT))
    master = start_fulcrum(lab["lb0"], lab, priority=150)
    start_fulcrum(lab["lb1"], lab, priority=100)
    client = lab["client"]

    wait_for(lambda: lab["lb0"].has_address(VIP4) and lab["lb0"].has_address(VIP6), 10,
             what="lb0 to own both VIPs")
    assert not lab["lb1"].has_address(VIP4)
    wait_for(lambda: ask_vip(client, VIP4) in {"rs1", "rs2"}, 10, what="the service on the v4 VIP")
    answers = {ask_vip(client, VIP4) for _ in range(6)} | {ask_vip(client, VIP6) for _ in range(6)}
    assert answers == {"rs1", "rs2"}  # balanced through lb0, over IPv4 and IPv6

    os.kill(master.pid, signal.SIGKILL)  # the node dies; its engine notices and hands over
    wait_for(lambda: lab["lb1"].has_address(VIP4), 10, what="lb1 to take the v4 VIP")
    wait_for(lambda: ask_vip(client, VIP4) in {"rs1", "rs2"}, 10, what="the service through lb1")
    wait_for(lambda: not lab["lb0"].has_address(VIP4), 10, what="lb0 to release the VIP")
    assert ask_vip(client, VIP6) in {"rs1", "rs2"}
    log = (lab.workdir / "lb1.log").read_text()
    assert "VRRP engine started" in log


def test_an_engine_that_dies_is_started_again(lab: Lab) -> None:
    node = lab["lb0"]
    fulcrum = start_fulcrum(node, lab, priority=150)
    wait_for(lambda: node.has_address(VIP4), 10, what="lb0 to own the VIP")
    log = lab.workdir / "lb0.log"

    def engine_pids() -> list[int]:
        # `ip netns exec` execs fulcrum, so these are fulcrum's own children; the engine is
        # the spawned one (multiprocessing also starts a resource tracker)
        children = node.run("pgrep", "-P", str(fulcrum.pid), "-f", "spawn_main", check=False)
        return [int(pid) for pid in children.stdout.split()]

    first = wait_for(engine_pids, 10, what="the engine process")
    os.kill(first[0], signal.SIGKILL)  # no priority 0, no cleanup: a crash
    wait_for(lambda: "VRRP engine exited; starting it again" in log.read_text(), 10,
             what="the node to notice")
    wait_for(lambda: engine_pids() and engine_pids() != first, 10, what="a new engine process")
    wait_for(lambda: node.has_address(VIP4), 10, what="the VIP held again")
    assert fulcrum.poll() is None  # the node itself kept serving
