"""`fulcrum run` with a cluster section: the node serves a TCP service on the VIP, its
VRRP engine (own process) owns the VIP, and clients reach the service through the
other node when the master's fulcrum process is killed."""

from __future__ import annotations

import os
import shutil
import signal
import sys

import pytest
from conftest import VIP4, VIP6, Lab
from tests.support import wait_for
from vrrp_lab import NAME_SERVER, PORT, ask_vip, start_node, transitions


def start_backends(lab: Lab) -> None:
    """rs1 and rs2 answer each connection on PORT with their name."""
    script = lab.workdir / "name_server.py"
    script.write_text(NAME_SERVER)
    for rs in ("rs1", "rs2"):
        lab[rs].popen(sys.executable, str(script), rs, lab[rs].v4, str(PORT))


def test_service_on_the_vip_moves_when_the_master_process_is_killed(lab: Lab) -> None:
    start_backends(lab)
    master = start_node(lab["lb0"], lab, priority=150)
    start_node(lab["lb1"], lab, priority=100)
    client = lab["client"]

    wait_for(lambda: lab["lb0"].has_address(VIP4) and lab["lb0"].has_address(VIP6), 10,
             what="lb0 to own both VIPs")
    # Started together, lb1 may be master a moment before lb0's first advert reaches it (a
    # loaded machine starts them apart); having heard lb0 it is backup and gives the VIP up.
    wait_for(lambda: transitions(lab.workdir / "lb1.log")[-1:] == ["backup"] and not lab["lb1"].has_address(VIP4),
             10, what="lb1 backup, without the VIP")
    wait_for(lambda: ask_vip(client, VIP4) in {"rs1", "rs2"}, 10, what="the service on the v4 VIP")
    answers = {ask_vip(client, VIP4) for _ in range(6)} | {ask_vip(client, VIP6) for _ in range(6)}
    assert answers == {"rs1", "rs2"}  # balanced through lb0, over IPv4 and IPv6

    os.kill(master.pid, signal.SIGKILL)  # the node dies; its engine notices and hands over
    wait_for(lambda: lab["lb1"].has_address(VIP4), 10, what="lb1 to take the v4 VIP")
    wait_for(lambda: ask_vip(client, VIP4) in {"rs1", "rs2"}, 10, what="the service through lb1")
    wait_for(lambda: not lab["lb0"].has_address(VIP4), 10, what="lb0 to release the VIP")
    # v6 is its own virtual router: it moves on its own schedule, and the client's neighbour
    # entry for the VIP follows lb1's unsolicited advertisement
    wait_for(lambda: ask_vip(client, VIP6) in {"rs1", "rs2"}, 10, what="the service through lb1 on v6")
    log = (lab.workdir / "lb1.log").read_text()
    assert "VRRP engine started" in log
    assert "logger=fulcrum.cluster" in log  # the engine logs the way the node does


def test_an_engine_that_dies_is_started_again(lab: Lab) -> None:
    node = lab["lb0"]
    fulcrum = start_node(node, lab, priority=150)
    wait_for(lambda: node.has_address(VIP4), 10, what="lb0 to own the VIP")
    log = lab.workdir / "lb0.log"

    def engine_pids() -> list[int]:
        # `ip netns exec` execs fulcrum, so these are fulcrum's own children; the engine is
        # the spawned one (multiprocessing also starts a resource tracker)
        children = node.run("pgrep", "-P", str(fulcrum.pid), "-f", "spawn_main", check=False)
        return [int(pid) for pid in children.stdout.split()]

    first = wait_for(engine_pids, 10, what="the engine process")
    os.kill(first[0], signal.SIGKILL)  # no priority 0, no cleanup: a crash
    wait_for(lambda: "VRRP engine exited with status -9 (killed by signal 9); starting it again in 1s"
             in log.read_text(), 10, what="the node to notice")
    wait_for(lambda: engine_pids() and engine_pids() != first, 10, what="a new engine process")
    wait_for(lambda: node.has_address(VIP4), 10, what="the VIP held again")
    assert fulcrum.poll() is None  # the node itself kept serving


NGINX_CONF = """
worker_processes 1;
pid {workdir}/{name}-nginx.pid;
error_log {workdir}/{name}-nginx.err;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    server {{ listen {address}:{port}; location / {{ return 200 "{name}\\n"; }} }}
}}
"""


@pytest.mark.skipif(shutil.which("wrk") is None or shutil.which("nginx") is None,
                    reason="needs wrk and nginx (Debian packages)")
def test_a_saturated_proxy_on_the_master_causes_no_failover(lab: Lab) -> None:
    """The proxy at full load next to 50 ms adverts: the engine's own process keeps them
    on time, so the backup never takes over (DESIGN.md, failure domains)."""
    for rs in ("rs1", "rs2"):
        conf = lab.workdir / f"{rs}-nginx.conf"
        conf.write_text(NGINX_CONF.format(workdir=lab.workdir, name=rs, address=lab[rs].v4, port=PORT))
        lab[rs].popen("nginx", "-c", str(conf), "-g", "daemon off;")
    start_node(lab["lb0"], lab, priority=150, advert_interval="50ms")
    wait_for(lambda: lab["lb0"].has_address(VIP4), 10, what="lb0 master")
    start_node(lab["lb1"], lab, priority=100, advert_interval="50ms")
    wait_for(lambda: transitions(lab.workdir / "lb1.log", "v4")[-1:] == ["backup"], 10,
             what="lb1 backup")
    # wrk ends by itself after 6 s; 200 connections keep fulcrum on lb0 at full CPU.
    load = lab["client"].run("wrk", "-t2", "-c200", "-d6s", "-H", "Connection: close",
                             f"http://{VIP4}:{PORT}/", timeout=60)
    requests = int(load.stdout.split(" requests in ")[0].split()[-1])
    assert requests > 1000, load.stdout  # the proxy really was loaded
    for router in ("v4", "v6"):
        assert transitions(lab.workdir / "lb1.log", router) == ["backup"]
    assert lab["lb0"].has_address(VIP4) and not lab["lb1"].has_address(VIP4)
