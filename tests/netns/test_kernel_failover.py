"""Established connections across a failover of kernel services (issue 8 §5): 50
streaming connections, the master node killed. With conntrackd (cluster.conntrack) a
`nat` flow carries on through the new master; with `dsr` and Maglev both nodes send a flow
to the same server without any state. Without conntrackd, `nat` flows break: the check
that shows the measurement can see a break at all."""

from __future__ import annotations

import shutil

import pytest
from conftest import Lab
from kernel_failover import measure

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(shutil.which("nft") is None or shutil.which("conntrackd") is None,
                       reason="needs nft (Debian nftables) and conntrackd"),
]


@pytest.mark.parametrize(("topology", "scheduler", "conntrack"), [("nat", "rr", True), ("dsr", "mh", False)])
def test_no_established_connection_breaks(lab: Lab, topology: str, scheduler: str, conntrack: bool) -> None:
    result = measure(lab, topology, scheduler, conntrack)
    assert result.connections == 50
    assert result.broken == 0, result.reasons


def test_nat_without_conntrackd_loses_its_connections(lab: Lab) -> None:
    result = measure(lab, "nat", "rr", False)
    assert result.broken > 0
