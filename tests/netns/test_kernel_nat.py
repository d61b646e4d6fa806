"""The nat topology (IPVS masquerading) from `fulcrum run`, in the namespace lab: lb0
rewrites the destination to rs1 or rs2, the servers see the client's own address and
answer through lb0 (their route to the client)."""

from __future__ import annotations

import os
import signal
import sys
from collections import Counter

import pytest
from conftest import VIP4, VIP6, Lab, wait_for
from kernel_lab import (
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


@pytest.fixture
def nat_lab(lab: Lab) -> Lab:
    start_servers(lab)
    prepare_balancer(lab)
    route_replies_via_balancer(lab)
    return lab


@pytest.mark.parametrize("vip", [VIP4, VIP6], ids=["v4", "v6"])
def test_nat_spreads_by_weight_and_servers_see_the_client(nat_lab: Lab, vip: str) -> None:
    lab = nat_lab
    start_fulcrum(lab, kernel_toml(lab, "nat", weights=(3, 1)))
    client = lab["client"]
    client_address = client.v4 if vip == VIP4 else client.v6
    answers = ask(client, vip, 40)
    servers = Counter(a.split()[0] for a in answers)
    assert servers == {"rs1": 30, "rs2": 10}, answers  # wrr 3:1 in the kernel
    assert {a.split()[1] for a in answers} == {client_address}  # the client's own address


def test_nat_udp(nat_lab: Lab) -> None:
    lab = nat_lab
    start_fulcrum(lab, kernel_toml(lab, "nat", scheduler="rr", weights=(1, 1), protocol="udp"))
    for vip, seen in ((VIP4, lab["client"].v4), (VIP6, lab["client"].v6)):
        answers = ask(lab["client"], vip, 10, proto="udp")
        assert Counter(a.split()[0] for a in answers) == {"rs1": 5, "rs2": 5}, answers
        assert {a.split()[1] for a in answers} == {seen}


def test_a_killed_server_leaves_and_comes_back(nat_lab: Lab) -> None:
    lab = nat_lab
    start_fulcrum(lab, kernel_toml(lab, "nat", scheduler="rr", weights=(1, 1)))
    client = lab["client"]
    assert set(a.split()[0] for a in ask(client, VIP4, 4)) == {"rs1", "rs2"}
    for process in lab["rs2"].processes:
        os.kill(process.pid, signal.SIGKILL)
    # health (fall 2 x 200 ms) takes rs2 out of the kernel's bucket map
    wait_for(lambda: all(a.startswith("rs1 ") for a in ask(client, VIP4, 6) + ask(client, VIP6, 6)), 10,
             what="rs2 to leave the kernel's maps")
    start_servers_only(lab, "rs2")
    wait_for(lambda: {a.split()[0] for a in ask(client, VIP4, 6)} == {"rs1", "rs2"}, 10,
             what="rs2 to come back")


def start_servers_only(lab: Lab, rs: str) -> None:
    lab[rs].popen(sys.executable, str(lab.workdir / "who_server.py"), rs, "80", log=lab.workdir / f"{rs}.log")


def test_drain_keeps_established_flows_and_stops_new_ones(nat_lab: Lab) -> None:
    lab = nat_lab
    start_fulcrum(lab, kernel_toml(lab, "nat", scheduler="rr", weights=(1, 1)))
    holders = [Holder(lab, VIP4, 6), Holder(lab, VIP6, 6)]
    assert all(set(h.servers) == {"rs1", "rs2"} for h in holders)
    ctl(lab, "server.drain", f"{lab['rs2'].v4}:80")
    ctl(lab, "server.drain", f"[{lab['rs2'].v6}]:80")
    wait_for(lambda: all(a.startswith("rs1 ") for a in ask(lab["client"], VIP4, 4) + ask(lab["client"], VIP6, 4)),
             10, what="new flows to avoid the draining rs2")
    for holder in holders:
        assert holder.finish()["broken"] == 0  # established flows to rs2 continue


def test_reload_keeps_established_flows(nat_lab: Lab) -> None:
    lab = nat_lab
    process = start_fulcrum(lab, kernel_toml(lab, "nat", scheduler="rr", weights=(1, 1)))
    holder = Holder(lab, VIP4, 8)
    before = lab["lb0"].run("nft", "-a", "list", "chain", "inet", lab.prefix, "prerouting").stdout
    # weights and scheduler change: only map elements and the service's chain are replaced
    (lab.workdir / "lb0.toml").write_text(kernel_toml(lab, "nat", scheduler="wrr", weights=(1, 3)))
    process.send_signal(signal.SIGHUP)
    wait_for(lambda: Counter(a.split()[0] for a in ask(lab["client"], VIP4, 8)) == {"rs1": 2, "rs2": 6}, 10,
             what="the reloaded weights in the kernel")
    assert holder.finish()["broken"] == 0
    after = lab["lb0"].run("nft", "-a", "list", "chain", "inet", lab.prefix, "prerouting").stdout
    assert before == after  # the base chain (and its rule handles) stayed: no flush and reload


def test_sigterm_removes_only_fulcrums_table(nat_lab: Lab) -> None:
    lab = nat_lab
    lb = lab["lb0"]
    other = f"{lab.prefix}other"
    script = lab.workdir / "other.nft"
    script.write_text(f"table inet {other} {{\n chain input {{\n type filter hook input priority 10; policy accept;\n"
                      f" tcp dport 9 counter\n }}\n}}\n")
    lb.run("nft", "-f", str(script))
    before = lb.run("nft", "list", "table", "inet", other).stdout
    process = start_fulcrum(lab, kernel_toml(lab, "nat"))
    assert table_exists(lb, lab.prefix)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    assert process.returncode == 0
    assert tables(lb) == [f"table inet {other}"]
    assert lb.run("nft", "list", "table", "inet", other).stdout == before
