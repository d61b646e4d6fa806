"""Imported IPVS configurations run as is on the kernel data plane: the rules `ipvsadm
-S -n` saved and Piranha's lvs.cf become `fulcrum run -c OUT` on lb0 (and lb1), and the
client's TCP and UDP traffic crosses the imported services to both real servers;
`fulcrum ipvsadm -L -n` shows them in ipvsadm's layout."""

from __future__ import annotations

import shutil
import signal

import pytest
from conftest import VIP4, Lab
from lvs_lab import GATEWAY4, PORT, ask_tcp, ask_udp, nat_routing, start_name_servers
from tests.support import FULCRUM, run_fulcrum, wait_for

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(shutil.which("nft") is None, reason="the kernel data plane needs nft (Debian nftables)"),
]


def add_control(path, socket_path) -> None:  # type: ignore[no-untyped-def]
    path.write_text(path.read_text() + f'\n[control]\nsocket = "{socket_path}"\n')


def test_imported_ipvsadm_rules_carry_tcp_and_udp(lab: Lab) -> None:
    start_name_servers(lab)
    rules = lab.workdir / "ipvsadm.rules"
    rules.write_text(f"""\
-A -t {VIP4}:{PORT} -s rr
-a -t {VIP4}:{PORT} -r {lab['rs1'].v4}:{PORT} -m -w 1
-a -t {VIP4}:{PORT} -r {lab['rs2'].v4}:{PORT} -m -w 1
-A -u {VIP4}:{PORT} -s rr
-a -u {VIP4}:{PORT} -r {lab['rs1'].v4}:{PORT} -m -w 1
-a -u {VIP4}:{PORT} -r {lab['rs2'].v4}:{PORT} -m -w 1
""")
    out = lab.workdir / "lb0.toml"
    converted = run_fulcrum("import", "ipvsadm", str(rules), "-o", str(out))
    assert converted.returncode == 0, converted.stderr
    socket_path = lab.workdir / "lb0.sock"
    add_control(out, socket_path)
    # ipvsadm never owned the VIP: it was put on the director by hand, as here
    lab["lb0"].run("ip", "addr", "add", f"{VIP4}/24", "dev", "eth0")
    nat_routing(lab, ["lb0"], lab["lb0"].v4)
    lab["lb0"].popen(FULCRUM, "run", "-c", str(out), log=lab.workdir / "lb0.log")
    first = wait_for(lambda: ask_tcp(lab["client"], VIP4), timeout=15, what="the imported tcp service")
    names = {first} | {ask_tcp(lab["client"], VIP4) for _ in range(5)}
    assert names == {"rs1", "rs2"}
    udp = {wait_for(lambda: ask_udp(lab["client"], VIP4), timeout=10, what="the imported udp service")}
    udp |= {ask_udp(lab["client"], VIP4) for _ in range(5)}
    assert udp == {"rs1", "rs2"}
    listing = lab["lb0"].run(FULCRUM, "ipvsadm", "--socket", str(socket_path), "-L", "-n")
    lines = listing.stdout.splitlines()
    assert lines[1:3] == ["Prot LocalAddress:Port Scheduler Flags",
                          "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn"]
    assert f"TCP  {VIP4}:{PORT} rr" in lines and f"UDP  {VIP4}:{PORT} rr" in lines
    assert sum(line.startswith(f"  -> {lab['rs1'].v4}:{PORT}") and " Masq " in line for line in lines) == 2
    stats = lab["lb0"].run(FULCRUM, "ipvsadm", "--socket", str(socket_path), "-L", "-n", "--stats").stdout
    tcp_line = next(line for line in stats.splitlines() if line.startswith(f"TCP  {VIP4}:{PORT}"))
    assert int(tcp_line.split()[2]) >= 6  # Conns: the six requests above
    connections = lab["lb0"].run(FULCRUM, "ipvsadm", "--socket", str(socket_path), "-L", "-n", "-c").stdout
    assert connections.startswith("IPVS connection entries\n")
    assert f"{lab['client'].v4}:" in connections


LVS_CF = """\
serial_no = 7
primary = {lb0}
service = lvs
backup_active = 1
backup = {lb1}
heartbeat = 1
heartbeat_port = 539
keepalive = 1
deadtime = 3
network = nat
nat_router = {gateway} eth0:1
nat_nmask = 255.255.255.0
debug_level = NONE
virtual web {{
     active = 1
     address = {vip} eth0:1
     vip_nmask = 255.255.255.0
     port = {port}
     send = "GET / HTTP/1.0\\r\\n\\r\\n"
     expect = "HTTP"
     use_regex = 0
     load_monitor = none
     scheduler = rr
     protocol = tcp
     timeout = 1
     reentry = 2
     quiesce_server = 0
     server rs1 {{
         address = {rs1}
         active = 1
         weight = 1
     }}
     server rs2 {{
         address = {rs2}
         active = 1
         weight = 1
     }}
}}
"""


def test_imported_lvs_cf_runs_on_both_nodes_and_fails_over(lab: Lab) -> None:
    start_name_servers(lab)
    lvs_cf = lab.workdir / "lvs.cf"
    lvs_cf.write_text(LVS_CF.format(lb0=lab["lb0"].v4, lb1=lab["lb1"].v4, gateway=GATEWAY4, vip=VIP4,
                                    port=PORT, rs1=lab["rs1"].v4, rs2=lab["rs2"].v4))
    nodes = {}
    for name, role in (("lb0", "primary"), ("lb1", "backup")):
        out = lab.workdir / f"{name}.toml"
        converted = run_fulcrum("import", "piranha", str(lvs_cf), "-o", str(out), "--node", role)
        assert converted.returncode == 0, converted.stderr
        add_control(out, lab.workdir / f"{name}.sock")
        nodes[name] = out
    nat_routing(lab, ["lb0", "lb1"], GATEWAY4)
    lb0 = lab["lb0"].popen(FULCRUM, "run", "-c", str(nodes["lb0"]), log=lab.workdir / "lb0.log")
    lab["lb1"].popen(FULCRUM, "run", "-c", str(nodes["lb1"]), log=lab.workdir / "lb1.log")
    wait_for(lambda: lab["lb0"].has_address(VIP4) and lab["lb0"].has_address(GATEWAY4), timeout=20,
             what="the VIP and nat_router on lb0")
    first = wait_for(lambda: ask_tcp(lab["client"], VIP4), timeout=15, what="the service through lb0")
    assert {first} | {ask_tcp(lab["client"], VIP4) for _ in range(5)} == {"rs1", "rs2"}
    lb0.send_signal(signal.SIGTERM)  # pulse stopped on the primary: the backup takes over
    wait_for(lambda: lab["lb1"].has_address(VIP4) and lab["lb1"].has_address(GATEWAY4), timeout=20,
             what="the VIP and nat_router on lb1")
    first = wait_for(lambda: ask_tcp(lab["client"], VIP4), timeout=15, what="the service through lb1")
    assert {first} | {ask_tcp(lab["client"], VIP4) for _ in range(5)} == {"rs1", "rs2"}
