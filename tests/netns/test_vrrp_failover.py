"""Two fulcrum VRRP runners on one bridge: one master, the VIP on the master only, and
the VIP moving when the master's runner dies or stops."""

from __future__ import annotations

import signal

import pytest
from conftest import VIP4, VIP6, Lab
from tests.support import wait_for
from vrrp_lab import ask_vip, start_name_servers, start_runner, transitions, vrrp_toml

pytestmark = pytest.mark.netns


def holders(lab: Lab, vip: str) -> list[str]:
    return [name for name in ("lb0", "lb1") if lab[name].has_address(vip)]


def start_pair(lab: Lab, advert_interval: str = "100ms", lb0_priority: int = 200) -> dict[str, object]:
    runners = {
        "lb0": start_runner(lab["lb0"], lab.workdir, vrrp_toml(lb0_priority, advert_interval)),
        "lb1": start_runner(lab["lb1"], lab.workdir, vrrp_toml(100, advert_interval)),
    }
    for name in ("lb0", "lb1"):
        start_name_servers(lab[name], lab.workdir)
    for router in ("v4", "v6"):
        wait_for(lambda router=router: transitions(lab.workdir / "lb1.log", router)[-1:] == ["backup"],
                 timeout=10, what=f"lb1 {router} backup")
    return runners


def test_higher_priority_runner_holds_both_vips_alone(lab: Lab):
    start_pair(lab)
    for vip in (VIP4, VIP6):
        wait_for(lambda vip=vip: holders(lab, vip) == ["lb0"], timeout=10, what=f"{vip} on lb0")
    # Many adverts later (100 ms each) it is still lb0 alone, and clients reach lb0.
    for vip in (VIP4, VIP6):
        assert wait_for(lambda vip=vip: ask_vip(lab["client"], vip), timeout=5, what=f"answer on {vip}") == "lb0"
        assert holders(lab, vip) == ["lb0"]


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["crash", "stop"])
def test_vip_moves_when_the_masters_runner_goes(lab: Lab, how: signal.Signals):
    runners = start_pair(lab)
    for vip in (VIP4, VIP6):
        wait_for(lambda vip=vip: holders(lab, vip) == ["lb0"], timeout=10, what=f"{vip} on lb0")
        wait_for(lambda vip=vip: ask_vip(lab["client"], vip) == "lb0", timeout=5, what=f"lb0 answering on {vip}")
    runners["lb0"].send_signal(how)  # type: ignore[attr-defined]
    for vip in (VIP4, VIP6):
        wait_for(lambda vip=vip: lab["lb1"].has_address(vip), timeout=10, what=f"{vip} on lb1")
        wait_for(lambda vip=vip: ask_vip(lab["client"], vip) == "lb1", timeout=10, what=f"lb1 answering on {vip}")
    if how == signal.SIGTERM:
        # A stopping master releases its addresses (§6.4.3: priority 0, then leave).
        assert holders(lab, VIP4) == ["lb1"] and holders(lab, VIP6) == ["lb1"]
