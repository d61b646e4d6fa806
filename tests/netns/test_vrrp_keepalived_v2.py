"""A fulcrum node joining a keepalived node that is left in keepalived's DEFAULT settings:
no `vrrp_version` line, so keepalived speaks VRRPv2 (RFC 3768) with 1 s adverts.
Elections both ways, preemption, graceful handover, failover on a partition and the heal
to exactly one master that clients reach; PASS authentication as keepalived sends it."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time

import pytest
from conftest import VIP4, Lab
from tests.support import wait_for
from vrrp_lab import (
    ask_vip,
    keepalived_conf,
    start_keepalived,
    start_name_servers,
    start_runner,
    vrrp_toml,
)

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(shutil.which("keepalived") is None, reason="keepalived is not installed"),
]

# keepalived's defaults (advert_int 1) make Master_Down_Interval 3.6 s at priority 100:
# every wait below allows a few of them.
WAIT = 15


def fulcrum(lab: Lab, priority: int, extra: str = "") -> subprocess.Popen[bytes]:
    return start_runner(lab["lb0"], lab.workdir,
                        vrrp_toml(priority, "1s", families=("v4",), extra="version = 2\n" + extra))


def keepalived(lab: Lab, priority: int, password: str | None = None) -> subprocess.Popen[bytes]:
    conf = keepalived_conf(priority, 1, version=None, families=("v4",), password=password)
    assert "vrrp_version" not in conf  # keepalived exactly as its defaults make it
    return start_keepalived(lab["lb1"], lab.workdir, conf)


def keepalived_log(lab: Lab) -> str:
    path = lab.workdir / "lb1-keepalived.log"
    return path.read_text() if path.exists() else ""


def keepalived_state(lab: Lab) -> str:
    """keepalived's last state, from its log ("" before the first)."""
    states = [line.split("Entering ")[1].split()[0] for line in keepalived_log(lab).splitlines()
              if "Entering " in line]
    return states[-1] if states else ""


def fulcrum_log(lab: Lab) -> str:
    path = lab.workdir / "lb0.log"
    return path.read_text() if path.exists() else ""


def holders(lab: Lab) -> list[str]:
    return [name for name in ("lb0", "lb1") if lab[name].has_address(VIP4)]


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=15)


def test_fulcrum_higher_is_master_hands_over_gracefully_and_preempts_back(lab: Lab):
    runner = fulcrum(lab, priority=150)
    keepalived(lab, priority=100)
    wait_for(lambda: holders(lab) == ["lb0"], timeout=WAIT, what="VIP on fulcrum (lb0)")
    wait_for(lambda: keepalived_state(lab) == "BACKUP", timeout=WAIT, what="keepalived backup")
    seen = len(keepalived_log(lab))
    time.sleep(2)  # two more adverts: keepalived accepts fulcrum's VRRPv2 and stays backup
    assert holders(lab) == ["lb0"]
    assert "Entering MASTER STATE" not in keepalived_log(lab)[seen:]

    stop(runner)  # priority 0 (§6.4.3): keepalived takes over after its skew time
    wait_for(lambda: holders(lab) == ["lb1"], timeout=WAIT, what="VIP on keepalived (lb1)")
    assert "priority 0" in keepalived_log(lab) or "Entering MASTER STATE" in keepalived_log(lab)

    fulcrum(lab, priority=150)  # returns with the higher priority and preempts
    wait_for(lambda: holders(lab) == ["lb0"], timeout=WAIT, what="VIP back on fulcrum")
    wait_for(lambda: keepalived_state(lab) == "BACKUP", timeout=WAIT, what="keepalived backup again")


def test_keepalived_higher_is_master_and_fulcrum_follows(lab: Lab):
    fulcrum(lab, priority=100)
    keepalived_process = keepalived(lab, priority=150)
    wait_for(lambda: holders(lab) == ["lb1"], timeout=WAIT, what="VIP on keepalived (lb1)")
    wait_for(lambda: "v4: initialize -> backup" in fulcrum_log(lab), timeout=WAIT, what="fulcrum backup")
    time.sleep(4)  # longer than fulcrum's Master_Down_Interval: it hears keepalived's v2 adverts
    assert holders(lab) == ["lb1"]
    assert "backup -> master" not in fulcrum_log(lab)

    stop(keepalived_process)
    wait_for(lambda: holders(lab) == ["lb0"], timeout=WAIT, what="VIP on fulcrum after keepalived stops")

    keepalived(lab, priority=150)
    wait_for(lambda: holders(lab) == ["lb1"], timeout=WAIT, what="keepalived preempting back")
    assert "master -> backup" in fulcrum_log(lab)


def test_partition_fails_over_and_the_heal_leaves_one_master_that_clients_reach(lab: Lab):
    start_name_servers(lab["lb0"], lab.workdir)
    start_name_servers(lab["lb1"], lab.workdir)
    fulcrum(lab, priority=150)
    keepalived(lab, priority=100)
    wait_for(lambda: holders(lab) == ["lb0"], timeout=WAIT, what="VIP on fulcrum")
    wait_for(lambda: keepalived_state(lab) == "BACKUP", timeout=WAIT, what="keepalived backup")
    wait_for(lambda: ask_vip(lab["client"], VIP4) == "lb0", timeout=WAIT, what="client reaching lb0")

    # Cut fulcrum's link: keepalived hears nothing and takes over; clients follow it.
    # (The kernel keeps ENETDOWN on fulcrum's announcement socket for its next send.)
    lab["lb0"].run("ip", "link", "set", "eth0", "down")
    wait_for(lambda: ask_vip(lab["client"], VIP4) == "lb1", timeout=WAIT, what="client reaching keepalived")

    lab["lb0"].run("ip", "link", "set", "eth0", "up")
    wait_for(lambda: holders(lab) == ["lb0"], timeout=WAIT, what="exactly one master (fulcrum) after the heal")
    # fulcrum announces again on its link's return (retrying a send that fails), so
    # the client does not wait for its neighbour cache to expire.
    wait_for(lambda: ask_vip(lab["client"], VIP4) == "lb0", timeout=WAIT, what="client reaching lb0 again")
    time.sleep(2)
    assert holders(lab) == ["lb0"] and keepalived_state(lab) == "BACKUP"
    log = fulcrum_log(lab)
    assert "eth0 is up again: announcing the VIPs" in log
    # The first announcement after the link's return meets the kept ENETDOWN; it is retried.
    failed = log.index("announcing 198.18.0.100 on eth0 failed: [Errno 100] Network is down; retrying")
    assert "announcing 198.18.0.100 on eth0 works again" in log[failed:]


def test_pass_authentication_as_keepalived_sends_it(lab: Lab):
    fulcrum(lab, priority=150, extra='authentication = { type = "PASS", password = "secret12" }\n')
    keepalived(lab, priority=100, password="secret12")
    wait_for(lambda: holders(lab) == ["lb0"], timeout=WAIT, what="VIP on fulcrum")
    wait_for(lambda: keepalived_state(lab) == "BACKUP", timeout=WAIT, what="keepalived backup")
    time.sleep(2)
    assert holders(lab) == ["lb0"]  # keepalived accepted fulcrum's password
    assert "ignoring adverts" not in fulcrum_log(lab)  # and fulcrum keepalived's


def test_a_wrong_password_or_version_is_named_in_the_log(lab: Lab):
    fulcrum(lab, priority=100, extra='authentication = { type = "PASS", password = "other" }\n')
    keepalived(lab, priority=150, password="secret12")
    wait_for(lambda: "wrong authentication password" in fulcrum_log(lab), timeout=WAIT,
             what="the password mismatch in fulcrum's log")
    # RFC 3768 §7.1: such adverts are discarded, so fulcrum does not follow that master
    wait_for(lambda: holders(lab) == ["lb0", "lb1"], timeout=WAIT, what="two masters that cannot hear each other")
    assert fulcrum_log(lab).count("wrong authentication password") == 1  # logged once per sender


def test_a_version_3_node_names_keepalived_defaults(lab: Lab):
    start_runner(lab["lb0"], lab.workdir, vrrp_toml(100, "1s", families=("v4",)))
    keepalived(lab, priority=150)
    wait_for(lambda: "VRRPv2, this router speaks VRRPv3 (set version = 2)" in fulcrum_log(lab),
             timeout=WAIT, what="the version mismatch in fulcrum's log")
