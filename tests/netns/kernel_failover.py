"""Long-lived connections across a failover of kernel services (issue 8 §5): lb0 and lb1
run `fulcrum run` with one kernel service on the VIP; 50 client connections stream from
the real servers (a chunk every 20 ms each way); lb0's node is killed (SIGKILL: its VRRP
engine sees the node gone and hands over) and lb1 takes the VIPs. A connection is broken
when it ends (reset, EOF) or carries no data in its last seconds. Used by
test_kernel_failover.py, and runnable to print the figures:

    .venv/bin/python tests/netns/kernel_failover.py [--connections 50]
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from conftest import VIP4, Lab
from lvs_lab import GATEWAY4, nat_routing
from tests.support import FULCRUM, wait_for
from vrrp_lab import transitions

STREAM_PORT = 9000

# Each connection: a thread that sends 64 bytes every 20 ms and reads what comes.
STREAM_SERVER = """
import socket, sys, threading, time
host, port = sys.argv[1], int(sys.argv[2])
def serve(conn):
    conn.settimeout(30)
    def reader():
        try:
            while conn.recv(4096):
                pass
        except OSError:
            pass
    threading.Thread(target=reader, daemon=True).start()
    try:
        while True:
            conn.sendall(b"x" * 64)
            time.sleep(0.02)
    except OSError:
        pass
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((host, port))
server.listen(256)
while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""

# Opens N connections, streams for `seconds`, prints JSON: per connection whether it
# broke (and why), the longest gap between two reads, and whether data still came in the
# last `quiet` seconds.
STREAM_CLIENT = """
import json, selectors, socket, sys, time
host, port, count, seconds, quiet = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
sel = selectors.DefaultSelector()
conns = {}
for i in range(count):
    s = socket.create_connection((host, port), timeout=5)
    s.setblocking(False)
    now = time.monotonic()
    conns[s] = {"broken": None, "last": now, "gap": 0.0, "bytes": 0}
    sel.register(s, selectors.EVENT_READ)
print("READY", flush=True)
end = time.monotonic() + seconds
next_send = 0.0
while time.monotonic() < end:
    now = time.monotonic()
    if now >= next_send:
        for s, st in conns.items():
            if st["broken"] is None:
                try:
                    s.send(b"y" * 64)
                except BlockingIOError:
                    pass
                except OSError as err:
                    st["broken"] = type(err).__name__
        next_send = now + 0.02
    for key, _ in sel.select(timeout=0.01):
        s, st = key.fileobj, conns[key.fileobj]
        try:
            data = s.recv(65536)
        except BlockingIOError:
            continue
        except OSError as err:
            st["broken"] = type(err).__name__
            sel.unregister(s)
            continue
        now = time.monotonic()
        if not data:
            st["broken"] = "EOF"
            sel.unregister(s)
            continue
        st["gap"] = max(st["gap"], now - st["last"])
        st["last"] = now
        st["bytes"] += len(data)
now = time.monotonic()
out = []
for st in conns.values():
    if st["broken"] is None and now - st["last"] > quiet:
        st["broken"] = "stalled"
    out.append({"broken": st["broken"], "gap": round(max(st["gap"], now - st["last"]), 3), "bytes": st["bytes"]})
print(json.dumps(out), flush=True)
"""


@dataclass
class Result:
    topology: str
    connections: int
    broken: int
    reasons: dict[str, int]
    longest_gap: float  # seconds without data on the worst connection that survived

    def row(self) -> str:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.reasons.items())) or "-"
        return f"| {self.topology} | {self.connections} | {self.broken} | {reasons} | {self.longest_gap:.2f} s |"


def node_toml(lab: Lab, name: str, peer: str, priority: int, topology: str, scheduler: str,
              conntrack: bool) -> str:
    servers = ", ".join(f'"{lab[rs].v4}:{STREAM_PORT}"' for rs in ("rs1", "rs2"))
    snat = f'snat = ["{GATEWAY4}"]\n' if topology == "fullnat" else ""
    toml = f"""
[services.stream]
listen = ["{VIP4}:{STREAM_PORT}"]
pool = "stream"
topology = "{topology}"
{snat}
[pools.stream]
scheduler = "{scheduler}"
servers = [{servers}]
health = {{ kind = "tcp", interval = "500ms", timeout = "250ms" }}

[control]
socket = "{lab.workdir / (name + '.sock')}"

[cluster.virtual_routers.v4]
vrid = 81
interface = "eth0"
priority = {priority}
advert_interval = "100ms"
vips = ["{VIP4}/24", "{GATEWAY4}/24"]
"""
    if conntrack:
        toml += f"""
[cluster.conntrack]
interface = "eth0"
address = "{lab[name].v4}"
peer = "{lab[peer].v4}"
state_dir = "{lab.workdir / (name + '-conntrackd')}"
"""
    return toml


def dsr_servers(lab: Lab) -> None:
    """The VIP on the servers' loopback, not answered for on the wire."""
    for rs in ("rs1", "rs2"):
        lab[rs].run(FULCRUM, "realserver", "setup", "--vip", VIP4, "--state", str(lab.workdir / f"{rs}-realserver.json"))


def measure(lab: Lab, topology: str, scheduler: str, conntrack: bool, connections: int = 50,
            before: float = 3.0, after: float = 8.0) -> Result:
    """One failover with `connections` streams open; lb0 is master at the start."""
    script = lab.workdir / "stream_server.py"
    script.write_text(STREAM_SERVER)
    for rs in ("rs1", "rs2"):
        # every address: a dsr packet still carries the VIP (on the server's lo)
        lab[rs].popen(sys.executable, str(script), "0.0.0.0", str(STREAM_PORT), log=lab.workdir / f"{rs}.log")
    if topology == "dsr":
        dsr_servers(lab)
        for lb in ("lb0", "lb1"):
            lab[lb].run("sysctl", "-qw", "net.ipv4.ip_forward=1")
    elif topology == "nat":
        nat_routing(lab, ["lb0", "lb1"], GATEWAY4)
    else:
        nat_routing(lab, ["lb0", "lb1"], GATEWAY4)  # forwarding; the route is unused (replies go to the snat VIP)
    nodes = {}
    for name, peer, priority in (("lb0", "lb1", 200), ("lb1", "lb0", 100)):
        config = lab.workdir / f"{name}-stream.toml"
        config.write_text(node_toml(lab, name, peer, priority, topology, scheduler, conntrack))
        nodes[name] = lab[name].popen(FULCRUM, "run", "-c", str(config), log=lab.workdir / f"{name}.log")
    wait_for(lambda: lab["lb0"].has_address(VIP4), timeout=60, what="the VIP on lb0")
    wait_for(lambda: transitions(lab.workdir / "lb1.log")[-1:] == ["backup"], timeout=60, what="lb1 backup")
    probe = ("import socket,sys\n"
             "try:\n    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close(); print('ok')\n"
             "except OSError:\n    print('')\n")
    wait_for(lambda: lab["client"].run(sys.executable, "-c", probe, VIP4, str(STREAM_PORT)).stdout.strip(),
             timeout=60, what="the kernel service answering on the VIP")
    client_script = lab.workdir / "stream_client.py"
    client_script.write_text(STREAM_CLIENT)
    quiet = 2.0
    client = subprocess.Popen(["ip", "netns", "exec", lab["client"].netns, sys.executable, str(client_script),
                               VIP4, str(STREAM_PORT), str(connections), str(before + after), str(quiet)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert client.stdout is not None
        ready = client.stdout.readline()
        if ready.strip() != "READY":
            raise AssertionError(f"the client could not open its connections: {ready} {client.stderr.read() if client.stderr else ''}")
        time.sleep(before)
        nodes["lb0"].send_signal(signal.SIGKILL)  # the master node dies
        output, errors = client.communicate(timeout=before + after + 30)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    if not lab["lb1"].has_address(VIP4):
        raise AssertionError("lb1 did not take the VIP over")
    streams = json.loads(output.strip().splitlines()[-1])
    reasons: dict[str, int] = {}
    for stream in streams:
        if stream["broken"]:
            reasons[stream["broken"]] = reasons.get(stream["broken"], 0) + 1
    gaps = [s["gap"] for s in streams if not s["broken"]]
    return Result(f"{topology} + {scheduler}{' + conntrackd' if conntrack else ''}", len(streams),
                  sum(reasons.values()), reasons, max(gaps) if gaps else 0.0)


CASES = [("nat", "rr", True), ("nat", "rr", False), ("fullnat", "rr", True), ("dsr", "mh", False)]


def main() -> int:
    import argparse
    from tempfile import TemporaryDirectory

    from conftest import PREFIX, _build, _teardown, _unavailable

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    reason = _unavailable()
    if reason:
        print(reason, file=sys.stderr)
        return 1
    print("| topology | connections | broken | how | longest gap of a survivor |")
    print("|---|---:|---:|---|---:|")
    for index, (topology, scheduler, conntrack) in enumerate(CASES):
        prefix = f"{PREFIX}k{index}"
        with TemporaryDirectory() as workdir:
            lab = None
            try:
                lab = _build(prefix, Path(workdir))
                print(measure(lab, topology, scheduler, conntrack, args.connections).row(), flush=True)
            finally:
                _teardown(prefix, list(lab.nodes.values()) if lab else [])
    return 0


if __name__ == "__main__":
    sys.exit(main())
