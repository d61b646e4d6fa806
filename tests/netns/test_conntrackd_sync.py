"""conntrackd as fulcrum runs it (cluster.conntrack): the VRRP engine of each node starts
its own conntrackd, the backup receives the master's connection state, and on becoming
master commits it into its kernel table (primary-backup.sh's `-c`), so a NAT flow
carries on through the new master. The flows here are written with `conntrack -I` in lb0's
namespace: what is tested is the replication and the switch, not the kernel rules."""

from __future__ import annotations

import shutil
import signal
import subprocess

import pytest
from conftest import VIP4, Lab
from tests.support import wait_for
from vrrp_lab import start_runner, transitions

from fulcrum.cluster.conntrackd import paths
from fulcrum.config.cluster import ConntrackSync

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(shutil.which("conntrackd") is None or shutil.which("conntrack") is None,
                       reason="conntrackd and conntrack (Debian conntrackd, conntrack) are needed"),
]

FLOW = ("-p", "tcp", "-s", "198.18.0.10", "-d", VIP4, "--sport", "40001", "--dport", "80")


# conntrackd behind a wrapper that notes, at each commit (-c), whether the VIP is on eth0
# yet: the commit must come first, or packets of old flows reach the new master untranslated.
WRAPPER = """#!/bin/sh
if [ "$3" = "-c" ]; then
    if ip -o addr show dev eth0 | grep -q " {vip}/"; then echo present; else echo absent; fi >> "$0.commits"
fi
exec conntrackd "$@"
"""


def toml(lab: Lab, name: str, peer: str, priority: int) -> str:
    wrapper = lab.workdir / f"{name}-conntrackd.sh"
    wrapper.write_text(WRAPPER.format(vip=VIP4))
    wrapper.chmod(0o755)
    return f"""
[cluster.virtual_routers.v4]
vrid = 71
interface = "eth0"
priority = {priority}
advert_interval = "100ms"
vips = ["{VIP4}/24"]

[cluster.conntrack]
interface = "eth0"
address = "{lab[name].v4}"
peer = "{lab[peer].v4}"
state_dir = "{lab.workdir / (name + '-conntrackd')}"
command = "{wrapper}"
"""


def conf(lab: Lab, name: str) -> str:
    sync = ConntrackSync(interface="eth0", address=lab[name].v4, peer="198.18.0.250",  # type: ignore[arg-type]
                         state_dir=str(lab.workdir / f"{name}-conntrackd"))
    return paths(sync).config


def kernel_flows(lab: Lab, name: str) -> str:
    return lab[name].run("conntrack", "-L", "-p", "tcp", "--dport", "80", check=False).stdout


def external_cache(lab: Lab, name: str) -> str:
    return lab[name].run("conntrackd", "-C", conf(lab, name), "-e", check=False).stdout


def test_backup_takes_the_masters_flows_over_on_failover(lab: Lab) -> None:
    # lb0 first: lb1 then hears a master from its start and never is one before the failover
    lb0 = start_runner(lab["lb0"], lab.workdir, toml(lab, "lb0", "lb1", 200))
    wait_for(lambda: transitions(lab.workdir / "lb0.log")[-1:] == ["master"], timeout=30, what="lb0 master")
    start_runner(lab["lb1"], lab.workdir, toml(lab, "lb1", "lb0", 100))
    wait_for(lambda: transitions(lab.workdir / "lb1.log")[-1:] == ["backup"], timeout=30, what="lb1 backup")
    created = lab["lb0"].run("conntrack", "-I", *FLOW, "--state", "ESTABLISHED", "-t", "600", "-u", "ASSURED",
                             check=False)
    assert created.returncode == 0, created.stderr
    # the backup holds the flow in conntrackd's external cache, not in its kernel table
    wait_for(lambda: "sport=40001" in external_cache(lab, "lb1"), timeout=30, what="the flow on lb1's conntrackd")
    assert "sport=40001" not in kernel_flows(lab, "lb1")
    lb0.send_signal(signal.SIGTERM)  # priority 0: lb1 takes over at once
    lb0.wait(timeout=20)
    wait_for(lambda: transitions(lab.workdir / "lb1.log")[-1:] == ["master"], timeout=30, what="lb1 master")
    wait_for(lambda: "sport=40001" in kernel_flows(lab, "lb1"), timeout=10,
             what="the flow committed into lb1's kernel table")
    flow = next(line for line in kernel_flows(lab, "lb1").splitlines() if "sport=40001" in line)
    assert "ESTABLISHED" in flow and f"dst={VIP4}" in flow
    # lb1 committed before it took the VIP (each node committed once, on becoming master)
    assert (lab.workdir / "lb1-conntrackd.sh.commits").read_text().split() == ["absent"]
    assert (lab.workdir / "lb0-conntrackd.sh.commits").read_text().split() == ["absent"]
    # lb0's engine stopped its conntrackd with it
    stopped = lab["lb0"].run("conntrackd", "-C", conf(lab, "lb0"), "-s", check=False)
    assert stopped.returncode != 0


def test_a_conntrackd_that_cannot_start_stops_the_engine_with_a_reason(lab: Lab) -> None:
    # eth9 does not exist: conntrackd refuses to run, and the engine says why
    bad = toml(lab, "lb0", "lb1", 200).replace('interface = "eth0"\naddress', 'interface = "eth9"\naddress')
    engine = start_runner(lab["lb0"], lab.workdir, bad)
    try:
        # start (5 s) and stop (5 s) are bounded; the rest is room for a loaded machine
        status = engine.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the engine kept running without conntrackd")
    assert status != 0
    log = (lab.workdir / "lb0.log").read_text()
    assert "cluster.conntrack: conntrackd did not start" in log, log
