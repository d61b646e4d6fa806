"""The kernel topologies from `fulcrum run`, in the namespace lab, IPv4 and IPv6: lb0
balances the VIPs to rs1 and rs2 with nftables.

- nat: the destination is rewritten; the servers see the client and answer through
  lb0 (their route to the client);
- fullnat: source rewritten too; the servers see lb0;
- dsr: lb0 rewrites the frame's MAC address only; the servers hold the VIPs on lo
  (`fulcrum realserver setup`) and answer the client directly."""

from __future__ import annotations

import os
import signal
import sys
from collections import Counter

import pytest
from conftest import VIP4, VIP6, Lab
from kernel_lab import (
    SERVERS,
    Holder,
    ask,
    ctl,
    kernel_toml,
    prepare_balancer,
    route_replies_via_balancer,
    start_fulcrum,
    start_servers,
    table_exists,
    tables,
)
from tests.support import FULCRUM, wait_for

TOPOLOGIES = ["nat", "fullnat", "dsr"]
VIPS = [pytest.param(VIP4, id="v4"), pytest.param(VIP6, id="v6")]


@pytest.fixture(params=TOPOLOGIES)
def topology(request: pytest.FixtureRequest, lab: Lab) -> str:
    """The lab wired for one topology: servers running, lb0 holding the VIPs."""
    name: str = request.param
    start_servers(lab)
    prepare_balancer(lab)
    if name == "nat":
        route_replies_via_balancer(lab)
    if name == "dsr":
        for rs in SERVERS:
            result = lab[rs].run(str(FULCRUM), "realserver", "setup", "--vip", VIP4, "--vip", VIP6,
                                 "--state", str(lab.workdir / f"{rs}-realserver.json"), check=False)
            assert result.returncode == 0, result.stderr
    return name


def seen_as(lab: Lab, topology: str, vip: str) -> set[str]:
    """The client addresses the servers may see: the client's own, or for fullnat an
    address of lb0 (masquerade takes the source address the kernel chooses towards the
    server: lb0's own, or for IPv6 possibly the VIP, which lb0 also holds)."""
    if topology != "fullnat":
        return {lab["client"].v4 if vip == VIP4 else lab["client"].v6}
    return {lab["lb0"].v4} if vip == VIP4 else {lab["lb0"].v6, VIP6}


def servers_of(answers: list[str]) -> Counter[str]:
    return Counter(a.split()[0] for a in answers)


@pytest.mark.parametrize("vip", VIPS)
def test_spread_by_weight_and_the_client_address_the_servers_see(lab: Lab, topology: str, vip: str) -> None:
    start_fulcrum(lab, kernel_toml(lab, topology, weights=(3, 1)))
    answers = ask(lab["client"], vip, 40)
    assert servers_of(answers) == {"rs1": 30, "rs2": 10}, answers  # wrr 3:1 in the kernel
    assert {a.split()[1] for a in answers} <= seen_as(lab, topology, vip)


@pytest.mark.parametrize("topology", ["nat", "fullnat"], indirect=True)
def test_udp(lab: Lab, topology: str) -> None:
    start_fulcrum(lab, kernel_toml(lab, topology, scheduler="rr", weights=(1, 1), protocol="udp"))
    for vip in (VIP4, VIP6):
        answers = ask(lab["client"], vip, 10, proto="udp")
        assert servers_of(answers) == {"rs1": 5, "rs2": 5}, answers
        assert {a.split()[1] for a in answers} <= seen_as(lab, topology, vip)


@pytest.mark.parametrize("topology", ["dsr"], indirect=True)
def test_dsr_replies_do_not_cross_the_balancer(lab: Lab, topology: str) -> None:
    lb = lab["lb0"]
    watch = lab.workdir / "watch.nft"  # a table of the test's own, counting on lb0's eth0
    watch.write_text(f"""table netdev {lab.prefix}watch {{
 chain ingress {{
  type filter hook ingress device "eth0" priority -500; policy accept;
  ip daddr {VIP4} tcp dport 80 counter comment "to"
  ip6 daddr {VIP6} tcp dport 80 counter comment "to"
  ip saddr {VIP4} tcp sport 80 counter comment "from"
  ip6 saddr {VIP6} tcp sport 80 counter comment "from"
 }}
}}
""")
    lb.run("nft", "-f", str(watch))
    start_fulcrum(lab, kernel_toml(lab, topology, scheduler="rr", weights=(1, 1)))
    assert servers_of(ask(lab["client"], VIP4, 10) + ask(lab["client"], VIP6, 10)) == {"rs1": 10, "rs2": 10}
    listing = lb.run("nft", "list", "table", "netdev", f"{lab.prefix}watch").stdout
    counts = {}
    for line in listing.splitlines():
        if "counter packets" in line:
            words = line.split()
            counts.setdefault(words[-1].strip('"'), []).append(int(words[words.index("packets") + 1]))
    assert min(counts["to"]) > 0  # the watch sees the client's packets arrive...
    assert counts["from"] == [0, 0]  # ...and no reply from the VIP ever reaches lb0


def test_a_killed_server_leaves_and_comes_back(lab: Lab, topology: str) -> None:
    start_fulcrum(lab, kernel_toml(lab, topology, scheduler="rr", weights=(1, 1)))
    client = lab["client"]
    assert set(servers_of(ask(client, VIP4, 4))) == {"rs1", "rs2"}
    for process in lab["rs2"].processes:
        os.kill(process.pid, signal.SIGKILL)
    # health (fall 2 x 200 ms) takes rs2 out of the kernel's bucket map
    wait_for(lambda: set(servers_of(ask(client, VIP4, 6) + ask(client, VIP6, 6))) == {"rs1"}, 10,
             what="rs2 to leave the kernel's maps")
    lab["rs2"].popen(sys.executable, str(lab.workdir / "who_server.py"), "rs2", "80")
    wait_for(lambda: set(servers_of(ask(client, VIP4, 6))) == {"rs1", "rs2"}, 10, what="rs2 to come back")


def test_drain_keeps_established_flows_and_stops_new_ones(lab: Lab, topology: str) -> None:
    start_fulcrum(lab, kernel_toml(lab, topology, scheduler="rr", weights=(1, 1)))
    holders = [Holder(lab, VIP4, 6), Holder(lab, VIP6, 6)]
    assert all(set(h.servers) == {"rs1", "rs2"} for h in holders)
    ctl(lab, "server.drain", f"{lab['rs2'].v4}:80")
    if topology != "dsr":  # dsr's pool has the v4 addresses only (MACs serve both families)
        ctl(lab, "server.drain", f"[{lab['rs2'].v6}]:80")
    wait_for(lambda: set(servers_of(ask(lab["client"], VIP4, 4) + ask(lab["client"], VIP6, 4))) == {"rs1"},
             10, what="new flows to avoid the draining rs2")
    for holder in holders:
        assert holder.finish()["broken"] == 0  # established flows to rs2 continue


def test_reload_keeps_established_flows(lab: Lab, topology: str) -> None:
    process = start_fulcrum(lab, kernel_toml(lab, topology, scheduler="rr", weights=(1, 1)))
    holder = Holder(lab, VIP4, 8)
    family = "netdev" if topology == "dsr" else "inet"
    base = "ingress_eth0" if topology == "dsr" else "prerouting"
    before = lab["lb0"].run("nft", "-a", "list", "chain", family, lab.prefix, base).stdout
    # scheduler and weights change: map elements and the service's chain, no flush and reload
    (lab.workdir / "lb0.toml").write_text(kernel_toml(lab, topology, scheduler="wrr", weights=(1, 3)))
    process.send_signal(signal.SIGHUP)
    wait_for(lambda: servers_of(ask(lab["client"], VIP4, 8)) == {"rs1": 2, "rs2": 6}, 10,
             what="the reloaded weights in the kernel")
    assert holder.finish()["broken"] == 0
    after = lab["lb0"].run("nft", "-a", "list", "chain", family, lab.prefix, base).stdout
    assert before == after  # the base chain and its rule handles stayed


def test_sigterm_removes_only_fulcrums_table(lab: Lab, topology: str) -> None:
    lb = lab["lb0"]
    other = f"{lab.prefix}other"
    script = lab.workdir / "other.nft"
    script.write_text(f"table inet {other} {{\n chain input {{\n type filter hook input priority 10; policy accept;\n"
                      f" tcp dport 9 counter\n }}\n}}\n")
    lb.run("nft", "-f", str(script))
    before = lb.run("nft", "list", "table", "inet", other).stdout
    process = start_fulcrum(lab, kernel_toml(lab, topology))
    assert table_exists(lb, lab.prefix, "netdev" if topology == "dsr" else "inet")
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    assert process.returncode == 0
    assert tables(lb) == [f"table inet {other}"]
    assert lb.run("nft", "list", "table", "inet", other).stdout == before
