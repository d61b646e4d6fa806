"""Kernel-plane features beyond the topologies themselves: IPVS persistence, Maglev in
the kernel, the counters `kernel_stats` reads, and `fulcrum realserver` undoing exactly
what it did."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections import Counter

from conftest import VIP4, VIP6, Lab
from kernel_lab import (
    PORT,
    SERVERS,
    ask,
    ctl,
    kernel_toml,
    prepare_balancer,
    route_replies_via_balancer,
    start_fulcrum,
    start_servers,
)
from tests.support import FULCRUM, wait_for


def nat_lab(lab: Lab) -> None:
    start_servers(lab)
    prepare_balancer(lab)
    route_replies_via_balancer(lab)


def servers_of(answers: list[str]) -> Counter[str]:
    return Counter(a.split()[0] for a in answers)


def test_persistence_keeps_a_client_on_its_server_until_it_is_disabled(lab: Lab) -> None:
    nat_lab(lab)
    start_fulcrum(lab, kernel_toml(lab, "nat", scheduler="rr", weights=(1, 1), extra_service='persistence = "5m"'))
    first = servers_of(ask(lab["client"], VIP4, 10))
    assert len(first) == 1  # rr would alternate; persistence keeps the client on one server
    [chosen] = first
    other = "rs2" if chosen == "rs1" else "rs1"
    ctl(lab, "server.drain", f"{lab[chosen].v4}:80")
    assert servers_of(ask(lab["client"], VIP4, 4)) == {chosen: 4}  # a draining server keeps its clients
    ctl(lab, "server.disable", f"{lab[chosen].v4}:80")
    wait_for(lambda: servers_of(ask(lab["client"], VIP4, 4)) == {other: 4}, 10,
             what="the client to move off the disabled server")


def test_mh_in_the_kernel_hashes_the_client_and_moves_only_a_dead_servers_clients(lab: Lab) -> None:
    nat_lab(lab)
    start_fulcrum(lab, kernel_toml(lab, "nat", scheduler="mh", weights=(1, 1)))
    first = servers_of(ask(lab["client"], VIP4, 8))
    assert len(first) == 1  # one client address, one Maglev slot
    [chosen] = first
    other = "rs2" if chosen == "rs1" else "rs1"
    for process in lab[chosen].processes:
        os.kill(process.pid, signal.SIGKILL)
    wait_for(lambda: servers_of(ask(lab["client"], VIP4, 4)) == {other: 4}, 10,
             what="the client's slot to walk on to the live server")


STATS = """
import json, sys
from fulcrum.config.load import load_file
from fulcrum.kernel.plane import kernel_stats
print(json.dumps(kernel_stats(load_file(sys.argv[1]))))
"""


def test_kernel_stats_reads_the_counters_per_server(lab: Lab) -> None:
    nat_lab(lab)
    start_fulcrum(lab, kernel_toml(lab, "nat", weights=(3, 1)))
    assert servers_of(ask(lab["client"], VIP4, 8)) == {"rs1": 6, "rs2": 2}
    result = lab["lb0"].run(sys.executable, "-c", STATS, str(lab.workdir / "lb0.toml"))
    stats = {(s["service"], s["family"]): s for s in json.loads(result.stdout)}
    v4 = {s["server"]: s for s in stats[("web", 4)]["servers"]}
    assert {k: s["connections"] for k, s in v4.items()} == {f"{lab['rs1'].v4}:80": 6, f"{lab['rs2'].v4}:80": 2}
    assert all(s["forward"] == "Masq" and s["in_packets"] > 0 and s["out_bytes"] > 0 for s in v4.values())
    assert [s["connections"] for s in stats[("web", 6)]["servers"]] == [0, 0]


def sysctl(lab: Lab, node: str, name: str) -> str:
    return lab[node].run("sysctl", "-n", name).stdout.strip()


def test_realserver_setup_is_idempotent_and_teardown_undoes_exactly_it(lab: Lab) -> None:
    rs = lab["rs1"]
    state = str(lab.workdir / "realserver.json")
    rs.run("ip", "addr", "add", f"{VIP6}/128", "dev", "lo")  # the operator's own, before setup
    before = {name: sysctl(lab, "rs1", name) for name in ("net.ipv4.conf.all.arp_ignore",
                                                          "net.ipv4.conf.all.arp_announce")}
    setup = [str(FULCRUM), "realserver", "setup", "--vip", VIP4, "--vip", VIP6, "--state", state]
    rs.run(*setup)
    assert VIP4 in rs.addresses("lo") and VIP6 in rs.addresses("lo")
    assert sysctl(lab, "rs1", "net.ipv4.conf.all.arp_ignore") == "1"
    assert sysctl(lab, "rs1", "net.ipv4.conf.all.arp_announce") == "2"
    recorded = json.loads((lab.workdir / "realserver.json").read_text())
    assert recorded["addresses"] == [f"{VIP4}/32"]  # not the operator's VIP6
    assert "already set up" in rs.run(*setup).stdout  # idempotent
    rs.run(str(FULCRUM), "realserver", "teardown", "--state", state)
    assert VIP4 not in rs.addresses("lo") and VIP6 in rs.addresses("lo")
    assert {name: sysctl(lab, "rs1", name) for name in before} == before
    assert not (lab.workdir / "realserver.json").exists()
    bad = rs.run(str(FULCRUM), "realserver", "setup", "--vip", "not-an-ip", "--state", state, check=False)
    assert bad.returncode == 1 and "not an IP address" in bad.stderr and "Traceback" not in bad.stderr


def test_dsr_servers_do_not_answer_arp_or_nd_for_the_vips(lab: Lab) -> None:
    start_servers(lab)
    prepare_balancer(lab)
    for rs in SERVERS:
        lab[rs].run(str(FULCRUM), "realserver", "setup", "--vip", VIP4, "--vip", VIP6,
                    "--state", str(lab.workdir / f"{rs}.json"))
    lb_mac = lab["lb0"].run("cat", "/sys/class/net/eth0/address").stdout.strip()
    for vip in (VIP4, VIP6):
        lab["client"].run("ping", "-c", "1", "-W", "2", vip)
        neighbours = lab["client"].run("ip", "neigh", "show", "to", vip).stdout
        assert lb_mac in neighbours, neighbours  # only the balancer claims the VIP


def test_a_crash_leaves_the_table_and_the_next_start_replaces_it(lab: Lab) -> None:
    nat_lab(lab)
    toml = kernel_toml(lab, "nat", scheduler="rr", weights=(1, 1))
    first = start_fulcrum(lab, toml)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    # traffic keeps flowing through the table the dead process left
    assert set(servers_of(ask(lab["client"], VIP4, 4))) == {"rs1", "rs2"}
    left = lab["lb0"].run("nft", "list", "tables").stdout.split("\n")
    start_fulcrum(lab, kernel_toml(lab, "nat", scheduler="wrr", weights=(3, 1)))
    wait_for(lambda: servers_of(ask(lab["client"], VIP4, 8)) == {"rs1": 6, "rs2": 2}, 10,
             what="the new process's rules")
    assert lab["lb0"].run("nft", "list", "tables").stdout.split("\n") == left  # replaced, not doubled


def kill_server(lab: Lab, name: str) -> None:
    for process in lab[name].processes:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    lab[name].processes.clear()


def restart_server(lab: Lab, name: str) -> None:
    lab[name].popen(sys.executable, str(lab.workdir / "who_server.py"), name, str(PORT),
                    log=lab.workdir / f"{name}-again.log")


def test_a_backup_server_takes_new_flows_only_while_no_primary_is_up(lab: Lab) -> None:
    nat_lab(lab)
    start_fulcrum(lab, kernel_toml(lab, "nat", scheduler="rr", weights=(1, 1), extra_server=("", "backup = true")))
    assert servers_of(ask(lab["client"], VIP4, 6)) == {"rs1": 6}  # rr, but rs2 is a backup
    kill_server(lab, "rs1")
    wait_for(lambda: servers_of(ask(lab["client"], VIP4, 4)) == {"rs2": 4}, 10,
             what="the backup to take over when the only primary is down")
    restart_server(lab, "rs1")
    wait_for(lambda: servers_of(ask(lab["client"], VIP4, 4)) == {"rs1": 4}, 10,
             what="the primary to take new flows back when it is up again")


def test_a_higher_lbset_is_used_only_while_every_lower_one_is_down(lab: Lab) -> None:
    nat_lab(lab)
    start_fulcrum(lab, kernel_toml(lab, "nat", scheduler="rr", weights=(1, 1), extra_server=("lbset = 1", "")))
    assert servers_of(ask(lab["client"], VIP4, 6)) == {"rs2": 6}  # set 0 first
    kill_server(lab, "rs2")
    wait_for(lambda: servers_of(ask(lab["client"], VIP4, 4)) == {"rs1": 4}, 10,
             what="set 1 to take over when set 0 is down")


def test_the_emergency_server_takes_new_flows_when_every_server_is_down(lab: Lab) -> None:
    nat_lab(lab)
    toml = kernel_toml(lab, "nat", scheduler="rr", weights=(1, 1), families=(4,))
    rs1, rs2 = lab["rs1"], lab["rs2"]
    servers = f'servers = [{{ address = "{rs1.v4}", port = {PORT} }}]\n'
    servers += f'emergency = {{ address = "{rs2.v4}", port = {PORT} }}\n'
    toml = "\n".join(servers if line.startswith("servers = ") else line for line in toml.split("\n"))
    start_fulcrum(lab, toml)
    assert servers_of(ask(lab["client"], VIP4, 4)) == {"rs1": 4}  # emergency idle while a server is up
    kill_server(lab, "rs1")
    wait_for(lambda: servers_of(ask(lab["client"], VIP4, 4)) == {"rs2": 4}, 10,
             what="the emergency server to take over")
