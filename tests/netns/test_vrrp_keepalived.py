"""A fulcrum node and a keepalived node (Debian's package) in one virtual router, for
IPv4 and IPv6: one master, and failover in both directions."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time

import pytest
from conftest import VIP4, VIP6, Lab, Node
from tests.support import wait_for
from vrrp_lab import keepalived_conf, start_keepalived, start_runner, vrrp_toml

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(shutil.which("keepalived") is None, reason="keepalived is not installed"),
]

ADVERT = 0.1  # seconds; keepalived accepts fractions with VRRP version 3


def holds_both(node: Node) -> bool:
    return node.has_address(VIP4) and node.has_address(VIP6)


def holds_none(node: Node) -> bool:
    return not node.has_address(VIP4) and not node.has_address(VIP6)


def fulcrum_states(lab: Lab) -> dict[str, str]:
    """The last state change of each fulcrum virtual router, from its log."""
    states = {}
    log = lab.workdir / "lb0.log"
    for line in log.read_text().splitlines() if log.exists() else []:
        if " -> " in line:
            router, change = line.split(" fulcrum.cluster ")[1].split(": ", 1)
            states[router] = change.split(" -> ")[1]
    return states


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=15)


def fulcrum(lab: Lab, priority: int) -> subprocess.Popen[bytes]:
    return start_runner(lab["lb0"], lab.workdir, vrrp_toml(priority, f"{int(ADVERT * 1000)}ms"))


def keepalived(lab: Lab, priority: int) -> subprocess.Popen[bytes]:
    return start_keepalived(lab["lb1"], lab.workdir, keepalived_conf(priority, ADVERT))


def test_fulcrum_master_keepalived_backup_and_back(lab: Lab):
    fulcrum_runner = fulcrum(lab, priority=200)
    keepalived(lab, priority=100)
    wait_for(lambda: holds_both(lab["lb0"]), timeout=10, what="VIPs on fulcrum (lb0)")
    wait_for(lambda: "Entering BACKUP STATE" in (lab.workdir / "lb1-keepalived.log").read_text(),
             timeout=10, what="keepalived in backup state")
    assert holds_none(lab["lb1"])

    stop(fulcrum_runner)  # priority 0: keepalived takes over after its skew time
    wait_for(lambda: holds_both(lab["lb1"]), timeout=10, what="VIPs on keepalived (lb1)")
    assert holds_none(lab["lb0"])

    fulcrum(lab, priority=200)  # returns with the higher priority and preempts
    wait_for(lambda: holds_both(lab["lb0"]), timeout=10, what="VIPs back on fulcrum")
    wait_for(lambda: holds_none(lab["lb1"]), timeout=10, what="keepalived releasing the VIPs")


def test_keepalived_master_fulcrum_backup_and_back(lab: Lab):
    fulcrum(lab, priority=100)
    keepalived_process = keepalived(lab, priority=200)
    wait_for(lambda: holds_both(lab["lb1"]), timeout=10, what="VIPs on keepalived (lb1)")
    wait_for(lambda: fulcrum_states(lab) == {"v4": "backup", "v6": "backup"}, timeout=10,
             what="fulcrum in backup state")
    assert holds_none(lab["lb0"])

    stop(keepalived_process)
    wait_for(lambda: holds_both(lab["lb0"]), timeout=10, what="VIPs on fulcrum (lb0)")
    assert holds_none(lab["lb1"])

    keepalived(lab, priority=200)
    wait_for(lambda: holds_both(lab["lb1"]), timeout=10, what="VIPs back on keepalived")
    wait_for(lambda: holds_none(lab["lb0"]), timeout=10, what="fulcrum releasing the VIPs")


def test_unicast_peering_with_keepalived(lab: Lab):
    lb0, lb1 = lab["lb0"], lab["lb1"]
    toml = ""
    for family, vip, ours, theirs in (("v4", f"{VIP4}/24", lb0.v4, lb1.v4), ("v6", f"{VIP6}/64", lb0.v6, lb1.v6)):
        toml += (f'[cluster.virtual_routers.{family}]\nvrid = 51\ninterface = "eth0"\npriority = 200\n'
                 f'advert_interval = "100ms"\nunicast_src = "{ours}"\nunicast_peers = ["{theirs}"]\n'
                 f'vips = ["{vip}"]\n')
    fulcrum_runner = start_runner(lb0, lab.workdir, toml)
    start_keepalived(lb1, lab.workdir, keepalived_conf(
        100, ADVERT, unicast={"v4": (lb1.v4, lb0.v4), "v6": (lb1.v6, lb0.v6)}))
    wait_for(lambda: holds_both(lb0), timeout=10, what="VIPs on fulcrum (lb0)")
    wait_for(lambda: "Entering BACKUP STATE" in (lab.workdir / "lb1-keepalived.log").read_text(),
             timeout=10, what="keepalived in backup state")
    time.sleep(1)  # ten adverts: keepalived accepts them and stays backup
    assert holds_none(lb1)
    stop(fulcrum_runner)
    wait_for(lambda: holds_both(lb1), timeout=10, what="VIPs on keepalived (lb1)")
    fulcrum_runner = start_runner(lb0, lab.workdir, toml)
    wait_for(lambda: holds_both(lb0) and holds_none(lb1), timeout=10, what="fulcrum preempting back")
