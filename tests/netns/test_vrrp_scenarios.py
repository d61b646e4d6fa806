"""Election scenarios with two fulcrum runners: preempt on and off, partition then heal,
and tracking (an interface, a ping target) moving the VIPs."""

from __future__ import annotations

import signal
import time

import pytest
from conftest import VIP4, VIP6, Lab
from tests.support import wait_for
from vrrp_lab import start_runner, transitions, vrrp_toml

pytestmark = pytest.mark.netns

ADVERT = "100ms"


def holders(lab: Lab) -> list[str]:
    """The nodes holding the VIPs, when every VIP has the same holders; else a mismatch."""
    per_vip = {vip: [name for name in ("lb0", "lb1") if lab[name].has_address(vip)] for vip in (VIP4, VIP6)}
    return per_vip[VIP4] if per_vip[VIP4] == per_vip[VIP6] else [f"mismatch {per_vip}"]


def start_lb0_after_lb1(lab: Lab, preempt: bool) -> None:
    start_runner(lab["lb1"], lab.workdir, vrrp_toml(100, ADVERT))
    wait_for(lambda: holders(lab) == ["lb1"], timeout=10, what="lb1 master alone")
    start_runner(lab["lb0"], lab.workdir, vrrp_toml(200, ADVERT, preempt=preempt))
    wait_for(lambda: transitions(lab.workdir / "lb0.log")[:1] == ["backup"], timeout=10, what="lb0 started")


def test_preferred_node_returning_preempts(lab: Lab):
    start_lb0_after_lb1(lab, preempt=True)
    wait_for(lambda: holders(lab) == ["lb0"], timeout=10, what="lb0 taking over")


def test_no_preempt_leaves_the_master_in_place(lab: Lab):
    start_lb0_after_lb1(lab, preempt=False)
    time.sleep(3)  # 30 adverts, about ten of lb0's master-down intervals
    assert holders(lab) == ["lb1"]
    assert transitions(lab.workdir / "lb0.log") == ["backup"]


def test_partition_then_heal_leaves_one_master(lab: Lab):
    start_runner(lab["lb0"], lab.workdir, vrrp_toml(200, ADVERT))
    start_runner(lab["lb1"], lab.workdir, vrrp_toml(100, ADVERT))
    wait_for(lambda: holders(lab) == ["lb0"], timeout=10, what="lb0 master")
    wait_for(lambda: transitions(lab.workdir / "lb1.log")[-1:] == ["backup"], timeout=10, what="lb1 backup")
    switch = f"{lab.prefix}sw"
    lab["client"].run("ip", "-n", switch, "link", "set", "p-lb1", "down")  # cut lb1 off the bridge
    wait_for(lambda: holders(lab) == ["lb0", "lb1"], timeout=10, what="both masters while partitioned")
    lab["client"].run("ip", "-n", switch, "link", "set", "p-lb1", "up")
    wait_for(lambda: holders(lab) == ["lb0"], timeout=10, what="one master after the heal")
    assert transitions(lab.workdir / "lb1.log")[-1] == "backup"


def test_failed_tracked_interface_lowers_priority_and_moves_the_vips(lab: Lab):
    # A veth pair inside lb0: taking the far end down is pulling trk0's cable.
    lab["lb0"].run("ip", "link", "add", "trk0", "type", "veth", "peer", "name", "trk1")
    lab["lb0"].run("ip", "link", "set", "trk0", "up")
    lab["lb0"].run("ip", "link", "set", "trk1", "up")
    toml = vrrp_toml(200, ADVERT, extra='[cluster.virtual_routers.{family}.track]\n'
                                       'interfaces = [{ name = "trk0", weight = -150 }]\n')
    start_runner(lab["lb0"], lab.workdir, toml)
    start_runner(lab["lb1"], lab.workdir, vrrp_toml(100, ADVERT))
    wait_for(lambda: holders(lab) == ["lb0"], timeout=10, what="lb0 master")
    lab["lb0"].run("ip", "link", "set", "trk1", "down")  # 200 - 150 = 50 < 100
    wait_for(lambda: holders(lab) == ["lb1"], timeout=10, what="lb1 taking over")
    lab["lb0"].run("ip", "link", "set", "trk1", "up")
    wait_for(lambda: holders(lab) == ["lb0"], timeout=10, what="lb0 back")
    assert "priority 200 -> 50" in (lab.workdir / "lb0.log").read_text()


def test_lost_ping_target_is_a_fault(lab: Lab):
    toml = vrrp_toml(200, ADVERT, extra=f'[[cluster.virtual_routers.{{family}}.track.ping]]\n'
                     f'target = "{lab["rs1"].v4}"\ninterval = "100ms"\ntimeout = "100ms"\n'
                     'fall = 2\nrise = 2\n')
    start_runner(lab["lb0"], lab.workdir, toml)
    start_runner(lab["lb1"], lab.workdir, vrrp_toml(100, ADVERT))
    wait_for(lambda: holders(lab) == ["lb0"], timeout=10, what="lb0 master")
    lab["rs1"].run("ip", "link", "set", "eth0", "down")
    wait_for(lambda: holders(lab) == ["lb1"], timeout=10, what="lb1 taking over")
    assert transitions(lab.workdir / "lb0.log")[-1] == "initialize"
    lab["rs1"].run("ip", "link", "set", "eth0", "up")
    wait_for(lambda: holders(lab) == ["lb0"], timeout=10, what="lb0 back after the target returns")


def test_notify_hooks_follow_the_states(lab: Lab):
    marker = lab.workdir / "hooks"
    hook = f'"sh -c \\"echo $FULCRUM_VROUTER-$FULCRUM_STATE >> {marker}\\""'
    toml = vrrp_toml(200, ADVERT, extra="[cluster.virtual_routers.{family}.notify]\n"
                     f"on_master = [{hook}]\non_backup = [{hook}]\non_stop = [{hook}]\n")
    runner = start_runner(lab["lb0"], lab.workdir, toml)
    wait_for(lambda: holders(lab) == ["lb0"], timeout=10, what="lb0 master")
    runner.send_signal(signal.SIGTERM)
    runner.wait(timeout=15)
    lines = marker.read_text().split()
    for family in ("v4", "v6"):
        assert [line for line in lines if line.startswith(family)] == [
            f"{family}-backup", f"{family}-master", f"{family}-stop"]


def test_an_advert_listing_other_addresses_is_logged_once(lab: Lab):
    start_runner(lab["lb0"], lab.workdir, vrrp_toml(200, ADVERT))
    start_runner(lab["lb1"], lab.workdir, vrrp_toml(100, ADVERT).replace(f'"{VIP4}/24"', '"198.18.0.101/24"'))
    log = lab.workdir / "lb1.log"
    wait_for(lambda: "advertises" in log.read_text(), timeout=10, what="the mismatch warning")
    time.sleep(1)  # ten more adverts from lb0
    assert log.read_text().count("advertises") == 1
    assert f"198.18.0.1 advertises {VIP4}, we have 198.18.0.101" in log.read_text()


def test_a_missing_interface_stops_the_engine_with_a_clear_error(lab: Lab):
    runner = start_runner(lab["lb0"], lab.workdir, vrrp_toml(200, ADVERT).replace('"eth0"', '"nope0"'))
    assert runner.wait(timeout=15) == 1
    assert "VRRP engine cannot start: virtual router 'v4' on nope0" in (lab.workdir / "lb0.log").read_text()
