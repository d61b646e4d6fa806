"""Measures (does not test) VRRP failover as a client sees it: from killing the master
node's processes (VRRP and the service on the VIP) to the first answer from the new master on the VIP, with a client that
connects to the VIP every 5 ms (50 ms connect timeout) and counts failed attempts.
The kill lands at a random point of the advert cycle. Needs root; builds and removes
its own namespaces like the tests.

    .venv/bin/python tests/netns/measure_failover.py [--rounds 5] [--peer fulcrum|keepalived|node]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

from conftest import PREFIX, VIP4, VIP6, Lab, _build, _teardown, _unavailable
from tests.support import wait_for
from vrrp_lab import (
    PORT,
    keepalived_conf,
    start_keepalived,
    start_name_servers,
    start_node,
    start_runner,
    transitions,
    vrrp_toml,
)

# A real server behind whole nodes: answers with the name of the node that proxied the
# connection (from its source address), so the client sees which node served it.
PROXIED_BY = """
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
names = {address: name for name, address in (a.split("=") for a in sys.argv[3:])}
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((host, port))
server.listen(64)
while True:
    conn, peer = server.accept()
    conn.sendall(names.get(peer[0], peer[0]).encode())
    conn.close()
"""

# Prints "monotonic-time answer failures-so-far" at each change of answer ("-": none).
POLLER = """
import socket, sys, time
host, port, until = sys.argv[1], int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
last, failures = None, 0
while time.monotonic() < until:
    answer = "-"
    try:
        with socket.socket(family, socket.SOCK_STREAM) as conn:
            conn.settimeout(0.05)
            conn.connect((host, port))
            answer = conn.recv(16).decode() or "-"
    except OSError:
        failures += 1
    if answer != last:
        print(f"{time.monotonic():.4f} {answer} {failures}", flush=True)
        last = answer
    time.sleep(0.005)
"""


def start_vrrp(lab: Lab, name: str, priority: int, advert: float, peer: str) -> subprocess.Popen[bytes]:
    if peer == "node":
        return start_node(lab[name], lab, priority, f"{round(advert * 1000)}ms")
    if peer == "keepalived":
        return start_keepalived(lab[name], lab.workdir, keepalived_conf(priority, advert))
    return start_runner(lab[name], lab.workdir, vrrp_toml(priority, f"{round(advert * 1000)}ms"))


def crash(lab: Lab, process: subprocess.Popen[bytes], peer: str, how: str) -> None:
    """KILL: the machine dies; KILLNODE: only `fulcrum run` dies; TERM: a graceful stop."""
    if peer == "node" and how == "KILL":
        # Every process of lb0 (its namespace holds nothing else in node mode).
        for pid in subprocess.run(["ip", "netns", "pids", lab["lb0"].netns], capture_output=True,
                                  text=True, check=True).stdout.split():
            os.kill(int(pid), signal.SIGKILL)
        return
    if peer == "keepalived" and how == "KILL":
        # keepalived's VRRP work is in a child that stops cleanly when its parent dies:
        # kill the child itself (its pid file), with the parent told not to respawn it.
        child = int((lab.workdir / "lb0-keepalived-r.pid").read_text())
        os.kill(child, signal.SIGKILL)
        return
    process.send_signal(signal.SIGTERM if how == "TERM" else signal.SIGKILL)


def one_round(workdir: Path, advert: float, how: str, vip: str, peer: str,
              index: int) -> tuple[float, int]:
    """(seconds from the kill until lb1 answers, failed connects in between)."""
    prefix = f"{PREFIX}m{index}"
    lab = _build(prefix, workdir)
    try:
        master = start_vrrp(lab, "lb0", 200, advert, peer)
        wait_for(lambda: lab["lb0"].has_address(vip), 15, what=f"lb0 holding {vip}")
        start_vrrp(lab, "lb1", 100, advert, peer)
        services = []
        if peer == "node":
            script = workdir / "proxied_by.py"
            script.write_text(PROXIED_BY)
            for name in ("rs1", "rs2"):
                lab[name].popen(sys.executable, str(script), lab[name].v4, str(PORT),
                                f"lb0={lab['lb0'].v4}", f"lb1={lab['lb1'].v4}")
        else:
            services = start_name_servers(lab["lb0"], workdir)
            start_name_servers(lab["lb1"], workdir)
        router = "v4" if vip == VIP4 else "v6"
        if peer == "keepalived":
            log = workdir / "lb1-keepalived.log"
            wait_for(lambda: f"({router}) Entering BACKUP STATE" in log.read_text(), 30, what="keepalived backup")
        else:
            wait_for(lambda: transitions(workdir / "lb1.log", router)[-1:] == ["backup"], 30, what="lb1 backup")
        poller_script = workdir / "poller.py"
        poller_script.write_text(POLLER)
        poller = lab["client"].popen(sys.executable, str(poller_script), vip, str(PORT), "30",
                                     stdout=subprocess.PIPE)
        assert poller.stdout is not None
        while poller.stdout.readline().split()[1] != b"lb0":
            pass
        time.sleep(2 * advert + random.uniform(1.0, 1.0 + advert))  # a random advert phase
        # The whole node goes: its VRRP process and the service it was running.
        for service in services:
            service.send_signal(signal.SIGTERM if how == "TERM" else signal.SIGKILL)
        crash(lab, master, peer, how)
        killed = time.monotonic()
        failures_before = None
        for line in poller.stdout:
            stamp, answer, failures = line.decode().split()
            if failures_before is None:
                failures_before = int(failures) - (answer == "-")
            if answer == "lb1":
                poller.kill()
                return float(stamp) - killed, int(failures) - failures_before
        raise RuntimeError("lb1 never answered")
    finally:
        _teardown(prefix, list(lab.nodes.values()))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--peer", choices=["fulcrum", "keepalived", "node"], default="fulcrum",
                        help="node: whole `fulcrum run` nodes proxying to two real servers")
    parser.add_argument("--advert", type=float, action="append", help="seconds; default 1 and 0.05")
    parser.add_argument("--signal", choices=["KILL", "TERM", "KILLNODE"], action="append",
                        help="KILLNODE (node peer): kill `fulcrum run` only, not its engine")
    parser.add_argument("--vip", choices=[VIP4, VIP6], action="append")
    parser.add_argument("--verbose", action="store_true", help="print every round")
    args = parser.parse_args()
    reason = _unavailable()
    if reason:
        print(f"skipped: {reason}")
        return 0
    index = 0
    print(f"{args.peer}: failover seconds min / median / max, failed connects median, {args.rounds} rounds")
    for advert in args.advert or (1.0, 0.05):
        master_down = 3 * advert + (256 - 100) * advert / 256
        for how in args.signal or ("KILL", "TERM"):
            for vip in args.vip or (VIP4, VIP6):
                times, failed = [], []
                for _ in range(args.rounds):
                    with TemporaryDirectory() as tmp:
                        index += 1
                        seconds, failures = one_round(Path(tmp), advert, how, vip, args.peer, index)
                        times.append(seconds)
                        failed.append(failures)
                        if args.verbose:
                            print(f"  {seconds:.3f} s, {failures} failed connects", flush=True)
                print(f"advert {advert:>4}s {how:>8} {vip:>14}: {min(times):.3f} / "
                      f"{statistics.median(times):.3f} / {max(times):.3f}   failed {statistics.median(failed):g}"
                      f"   (master-down interval {master_down:.3f}, skew {master_down - 3 * advert:.3f})",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
