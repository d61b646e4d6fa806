"""Unicast adverts to listed peers, and the engine on its own thread beside a busy
main thread (DESIGN.md, failure domains)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import VIP4, VIP6, Lab
from tests.support import wait_for
from vrrp_lab import start_runner, transitions, vrrp_toml

pytestmark = pytest.mark.netns


def unicast_toml(lab: Lab, me: str, peer: str, priority: int) -> str:
    toml = ""
    for family, vip, attribute in (("v4", f"{VIP4}/24", "v4"), ("v6", f"{VIP6}/64", "v6")):
        toml += f"""
[cluster.virtual_routers.{family}]
vrid = 7
interface = "eth0"
priority = {priority}
advert_interval = "100ms"
unicast_src = "{getattr(lab[me], attribute)}"
unicast_peers = ["{getattr(lab[peer], attribute)}"]
vips = ["{vip}"]
"""
    return toml


# Counts VRRP packets that reach a bystander, multicast groups joined, until SIGTERM (or
# argv[1] seconds, a bound): "heard" on the first one, the count when it stops.
BYSTANDER = """
import select, signal, socket, struct, sys, time
stopping = []
signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
index = socket.if_nametoindex("eth0")
v4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
v4.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
              struct.pack("=4s4si", socket.inet_aton("224.0.0.18"), bytes(4), index))
v6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 112)
v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
              socket.inet_pton(socket.AF_INET6, "ff02::12") + struct.pack("@I", index))
print("listening", flush=True)
count, until = 0, time.monotonic() + float(sys.argv[1])
while not stopping and time.monotonic() < until:
    try:
        ready = select.select([v4, v6], [], [], 0.1)[0]
    except InterruptedError:
        ready = []
    for sock in ready:
        sock.recv(2048)
        count += 1
        if count == 1:
            print("heard", flush=True)
print("vrrp packets", count, flush=True)
"""


def start_bystander(lab: Lab, seconds: float = 60) -> tuple[subprocess.Popen[bytes], Path]:
    script = lab.workdir / "bystander.py"
    script.write_text(BYSTANDER)
    log = lab.workdir / "bystander.log"
    process = lab["client"].popen(sys.executable, str(script), str(seconds), log=log)
    wait_for(lambda: log.exists() and "listening" in log.read_text(), timeout=10, what="the bystander listening")
    return process, log


def stop_bystander(process: subprocess.Popen[bytes], log: Path) -> str:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    return log.read_text()


def test_the_bystander_hears_multicast_adverts(lab: Lab):
    # The control for the unicast test below: the same listener does hear multicast.
    bystander, log = start_bystander(lab)
    start_runner(lab["lb0"], lab.workdir, vrrp_toml(200, "100ms"))
    wait_for(lambda: "heard" in log.read_text(), timeout=30, what="an advert at the bystander")
    assert "vrrp packets 0" not in stop_bystander(bystander, log)


def test_unicast_peers_elect_and_fail_over(lab: Lab):
    bystander, bystander_log = start_bystander(lab)
    lb0 = start_runner(lab["lb0"], lab.workdir, unicast_toml(lab, "lb0", "lb1", 200))
    start_runner(lab["lb1"], lab.workdir, unicast_toml(lab, "lb1", "lb0", 100))
    for router in ("v4", "v6"):
        wait_for(lambda router=router: transitions(lab.workdir / "lb1.log", router)[-1:] == ["backup"],
                 timeout=10, what=f"lb1 {router} backup")
        wait_for(lambda router=router: transitions(lab.workdir / "lb0.log", router)[-1:] == ["master"],
                 timeout=10, what=f"lb0 {router} master")
    assert lab["lb0"].has_address(VIP4) and lab["lb0"].has_address(VIP6)
    assert not lab["lb1"].has_address(VIP4) and not lab["lb1"].has_address(VIP6)
    lb0.send_signal(signal.SIGTERM)
    wait_for(lambda: lab["lb1"].has_address(VIP4) and lab["lb1"].has_address(VIP6), timeout=10,
             what="VIPs on lb1")
    # The bystander listened through the election, lb0's last adverts and lb1's first ones
    # (adverts were sent: the peers elected and failed over): no multicast, and none to it.
    assert "vrrp packets 0" in stop_bystander(bystander, bystander_log)


# The engine on a thread of a process whose main thread spins in Python, as a busy
# proxy would; the backup next door must never see it miss its 50 ms adverts.
BUSY_NODE = """
import sys, time
from fulcrum.cluster.runner import ClusterThread, load_cluster
engine = ClusterThread(load_cluster(sys.argv[1]))
engine.start()
deadline = time.monotonic() + float(sys.argv[2])
spins = 0
while time.monotonic() < deadline:
    spins += sum(i * i for i in range(10000))  # hold the GIL the way Python code does
engine.stop()
print("stopped", engine.error, flush=True)
"""


def test_engine_thread_keeps_its_adverts_while_the_main_thread_is_busy(lab: Lab):
    config = lab.workdir / "lb0.toml"
    config.write_text(vrrp_toml(200, "50ms"))
    script = lab.workdir / "busy_node.py"
    script.write_text(BUSY_NODE)
    busy = lab["lb0"].popen(sys.executable, str(script), str(config), "6", log=lab.workdir / "lb0.log")
    wait_for(lambda: lab["lb0"].has_address(VIP4) and lab["lb0"].has_address(VIP6), timeout=10,
             what="the busy node becoming master")
    start_runner(lab["lb1"], lab.workdir, vrrp_toml(100, "50ms"))
    assert busy.wait(timeout=30) == 0
    assert "stopped None" in (lab.workdir / "lb0.log").read_text()
    for router in ("v4", "v6"):
        wait_for(lambda router=router: transitions(lab.workdir / "lb1.log", router)[-1:] == ["master"],
                 timeout=10, what=f"lb1 {router} taking over after the stop")
        # lb1 was backup all along, and took over only when the busy node stopped.
        assert transitions(lab.workdir / "lb1.log", router) == ["backup", "master"]


# A node process that starts the engine as a child process, as node.py would, and
# reports pool health to it over a pipe; commands come on stdin.
NODE_WITH_ENGINE_PROCESS = """
import multiprocessing, sys
from fulcrum.cluster.runner import load_cluster, serve
if __name__ == "__main__":
    spawn = multiprocessing.get_context("spawn")
    engine_end, node_end = spawn.Pipe(duplex=False)
    engine = spawn.Process(target=serve, args=(load_cluster(sys.argv[1]), engine_end))
    engine.start()
    engine_end.close()  # the child's copy is the one that matters
    for line in sys.stdin:
        if line.strip() == "exit":
            break
        pool, state = line.split()
        node_end.send((pool, state == "up"))
    node_end.close()  # what a crash would do too: the engine sees the end of the pipe
    engine.join(15)
    print("node exiting, engine exit code", engine.exitcode, flush=True)
"""


def test_engine_process_follows_pool_health_and_stops_with_its_node(lab: Lab):
    config = lab.workdir / "lb0.toml"
    config.write_text(vrrp_toml(200, "100ms", extra='[[cluster.virtual_routers.{family}.track.pools]]\n'
                                                  'pool = "web"\nweight = 0\n'))
    script = lab.workdir / "node.py"
    script.write_text(NODE_WITH_ENGINE_PROCESS)
    node = lab["lb0"].popen(sys.executable, str(script), str(config), stdin=subprocess.PIPE,
                            log=lab.workdir / "lb0.log")
    assert node.stdin is not None

    def tell(line: str) -> None:
        node.stdin.write(line.encode() + b"\n")  # type: ignore[union-attr]
        node.stdin.flush()  # type: ignore[union-attr]

    def holds() -> bool:
        return lab["lb0"].has_address(VIP4) and lab["lb0"].has_address(VIP6)

    wait_for(holds, timeout=10, what="the engine process becoming master")
    tell("web down")  # weight 0: fault, the VIPs go
    wait_for(lambda: not lab["lb0"].has_address(VIP4) and not lab["lb0"].has_address(VIP6),
             timeout=10, what="fault releasing the VIPs")
    tell("web up")
    wait_for(holds, timeout=10, what="master again after the pool recovers")
    tell("exit")  # the node goes; its engine must not outlive it holding the VIPs
    assert node.wait(timeout=15) == 0
    wait_for(lambda: not lab["lb0"].has_address(VIP4) and not lab["lb0"].has_address(VIP6),
             timeout=10, what="the orphaned engine handing over")
    log = (lab.workdir / "lb0.log").read_text()
    assert "pool web is failed" in log and "closed the pool health channel" in log
    assert "engine exit code 0" in log


HOG = """
import sys, time
until = time.monotonic() + float(sys.argv[1])
while time.monotonic() < until:
    sum(i * i for i in range(10000))
"""


def test_saturated_cpu_on_the_master_causes_no_failover(lab: Lab):
    start_runner(lab["lb0"], lab.workdir, vrrp_toml(200, "50ms"))
    wait_for(lambda: lab["lb0"].has_address(VIP4) and lab["lb0"].has_address(VIP6), timeout=10,
             what="lb0 master")
    start_runner(lab["lb1"], lab.workdir, vrrp_toml(100, "50ms"))
    for router in ("v4", "v6"):
        wait_for(lambda router=router: transitions(lab.workdir / "lb1.log", router)[-1:] == ["backup"],
                 timeout=10, what=f"lb1 {router} backup")
    script = lab.workdir / "hog.py"
    script.write_text(HOG)
    # Four times as many busy processes as CPUs, next to the master's engine, for 5 s.
    hogs = [lab["lb0"].popen(sys.executable, str(script), "5") for _ in range(4 * (os.cpu_count() or 1))]
    for hog in hogs:
        assert hog.wait(timeout=30) == 0
    for router in ("v4", "v6"):
        assert transitions(lab.workdir / "lb1.log", router) == ["backup"]
