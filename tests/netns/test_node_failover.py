"""Whole nodes: `fulcrum run` on lb0 and lb1 with a TCP service on the VIP in front of two
real servers. Clients reach the service through whichever node is master; killing the
master node moves the service to the other."""

from __future__ import annotations

import os
import signal
import sys

import pytest
from conftest import VIP4, VIP6, Lab
from tests.support import FULCRUM, wait_for
from vrrp_lab import NAME_SERVER, PORT, ask_vip, start_node, transitions

pytestmark = pytest.mark.netns

@pytest.mark.skipif(not os.path.exists(FULCRUM), reason="the fulcrum command is not installed in this venv")
def test_killing_the_master_node_moves_the_service(lab: Lab):
    script = lab.workdir / "name_server.py"
    script.write_text(NAME_SERVER)
    for name in ("rs1", "rs2"):
        lab[name].popen(sys.executable, str(script), name, lab[name].v4, str(PORT))
    lb0 = start_node(lab["lb0"], lab, 200)
    start_node(lab["lb1"], lab, 100)
    for router in ("v4", "v6"):
        wait_for(lambda router=router: transitions(lab.workdir / "lb0.log", router)[-1:] == ["master"],
                 timeout=15, what=f"lb0 {router} master")
        wait_for(lambda router=router: transitions(lab.workdir / "lb1.log", router)[-1:] == ["backup"],
                 timeout=15, what=f"lb1 {router} backup")
    for vip in (VIP4, VIP6):
        assert wait_for(lambda vip=vip: ask_vip(lab["client"], vip), timeout=10,
                        what=f"the service on {vip}") in ("rs1", "rs2")
    lb0.send_signal(signal.SIGKILL)  # the node dies: proxy, health checks, everything
    for vip in (VIP4, VIP6):
        wait_for(lambda vip=vip: lab["lb1"].has_address(vip), timeout=10, what=f"{vip} on lb1")
        assert wait_for(lambda vip=vip: ask_vip(lab["client"], vip), timeout=10,
                        what=f"the service on {vip} through lb1") in ("rs1", "rs2")
    # The orphaned engine saw its node's pipe close and handed over (priority 0), so no
    # address is left behind on lb0.
    wait_for(lambda: not lab["lb0"].has_address(VIP4) and not lab["lb0"].has_address(VIP6),
             timeout=10, what="lb0 without VIPs")
