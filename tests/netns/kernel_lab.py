"""Pieces shared by the kernel-topology scenarios (nat, fullnat, dsr) in the namespace
lab: lb0 balances the VIPs to rs1 and rs2; the client talks to the VIPs.

- `WHO_SERVER` runs on the real servers: each TCP connection is greeted with
  "<server> <client address as the server sees it>", then every line sent is answered
  with the server's name (a long-lived flow can be checked for staying put); each UDP
  datagram is answered with the greeting.
- `ask` opens connections (or sends datagrams) from the client and returns the
  greetings; `Holder` keeps flows open and reports whether they survived."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from conftest import VIP4, VIP6, Lab, Node
from tests.support import FULCRUM, wait_for

PORT = 80
SERVERS = ("rs1", "rs2")

WHO_SERVER = r"""
import socket, sys, threading
name, port = sys.argv[1], int(sys.argv[2])

def serve_tcp(family, host):
    server = socket.socket(family, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    server.bind((host, port))
    server.listen(128)
    while True:
        conn, peer = server.accept()
        threading.Thread(target=talk, args=(conn, peer[0]), daemon=True).start()

def talk(conn, peer):
    with conn:
        conn.sendall(f"{name} {peer}\n".encode())
        while True:
            data = conn.recv(1024)
            if not data:
                return
            conn.sendall(f"{name}\n".encode() * data.count(b"\n"))

def serve_udp(family, host):
    server = socket.socket(family, socket.SOCK_DGRAM)
    if family == socket.AF_INET6:
        server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    server.bind((host, port))
    while True:
        data, peer = server.recvfrom(2048)
        server.sendto(f"{name} {peer[0]}\n".encode(), peer)

for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
    threading.Thread(target=serve_tcp, args=(family, host), daemon=True).start()
    threading.Thread(target=serve_udp, args=(family, host), daemon=True).start()
threading.Event().wait()
"""

ASK = r"""
import json, socket, sys
host, port, count, proto = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
family = socket.AF_INET6 if ":" in host else socket.AF_INET
answers = []
for _ in range(count):
    try:
        if proto == "udp":
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.settimeout(1.0)
                s.sendto(b"hello\n", (host, port))
                answers.append(s.recv(256).decode().strip())
        else:
            with socket.create_connection((host, port), timeout=1.0) as s:
                answers.append(s.makefile().readline().strip())
    except OSError as err:
        answers.append(f"error {err.__class__.__name__}")
print(json.dumps(answers))
"""

# Opens `count` connections, then every 50 ms sends a line on each and expects its
# server's name back, until `stop` exists (at most 60 s). Prints a JSON report.
HOLDER = r"""
import json, os, socket, sys, time
host, port, count, stop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
conns, first = [], []
for _ in range(count):
    s = socket.create_connection((host, port), timeout=2.0)
    f = s.makefile()
    first.append(f.readline().split()[0])
    conns.append((s, f))
print(json.dumps({"ready": first}), flush=True)
broken, rounds, moved = 0, 0, 0
deadline = time.monotonic() + 60
while not os.path.exists(stop) and time.monotonic() < deadline:
    rounds += 1
    for i, (s, f) in enumerate(conns):
        if s is None:
            continue
        try:
            s.sendall(b"ping\n")
            got = f.readline().strip()
        except OSError:
            got = ""
        if got != first[i]:
            broken += 1
            moved += bool(got)
            conns[i] = (None, None)
    time.sleep(0.05)
print(json.dumps({"broken": broken, "moved": moved, "rounds": rounds}), flush=True)
"""


def start_servers(lab: Lab) -> None:
    script = lab.workdir / "who_server.py"
    script.write_text(WHO_SERVER)
    for rs in SERVERS:
        lab[rs].popen(sys.executable, str(script), rs, str(PORT), log=lab.workdir / f"{rs}.log")
    for rs in SERVERS:
        wait_for(lambda rs=rs: lab[rs].run("ss", "-Hltn", f"sport = :{PORT}").stdout.strip(), 10,
                 what=f"{rs}'s server")


def ask(client: Node, host: str, count: int, proto: str = "tcp", port: int = PORT) -> list[str]:
    result = client.run(sys.executable, "-c", ASK, host, str(port), str(count), proto, timeout=60)
    answers: list[str] = json.loads(result.stdout)
    return answers


def prepare_balancer(lab: Lab) -> None:
    """lb0 holds the VIPs and forwards (nat, fullnat); no ICMP redirects, which would
    tell the servers to bypass it."""
    lb = lab["lb0"]
    lb.run("ip", "addr", "add", f"{VIP4}/24", "dev", "eth0")
    lb.run("ip", "addr", "add", f"{VIP6}/64", "dev", "eth0", "nodad")
    lb.run("sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
           "net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.eth0.send_redirects=0")


def route_replies_via_balancer(lab: Lab) -> None:
    """nat: the servers reach the client through lb0 (as if it were their gateway)."""
    client, lb = lab["client"], lab["lb0"]
    for rs in SERVERS:
        node = lab[rs]
        node.run("sysctl", "-qw", "net.ipv4.conf.all.accept_redirects=0", "net.ipv4.conf.eth0.accept_redirects=0",
                 "net.ipv6.conf.all.accept_redirects=0", "net.ipv6.conf.eth0.accept_redirects=0")
        node.run("ip", "route", "add", f"{client.v4}/32", "via", lb.v4)
        node.run("ip", "-6", "route", "add", f"{client.v6}/128", "via", lb.v6)


def kernel_toml(lab: Lab, topology: str, scheduler: str = "wrr", weights: tuple[int, int] = (3, 1),
                extra_service: str = "", families: tuple[int, ...] = (4, 6), protocol: str = "tcp",
                extra_server: tuple[str, str] = ("", "")) -> str:
    listen = ", ".join(f'"{VIP4}:{PORT}"' if f == 4 else f'"[{VIP6}]:{PORT}"' for f in families)
    servers = []
    for rs, weight, extra in zip(SERVERS, weights, extra_server, strict=True):
        addresses = [lab[rs].v4] if topology == "dsr" else [lab[rs].v4, f"[{lab[rs].v6}]"]
        more = f", {extra}" if extra else ""
        for address in addresses:
            servers.append(f'{{ address = "{address.strip("[]")}", port = {PORT}, weight = {weight}{more} }}')
    return f"""
[services.web]
listen = [{listen}]
pool = "web"
topology = "{topology}"
protocol = "{protocol}"
{extra_service}

[pools.web]
scheduler = "{scheduler}"
servers = [{", ".join(servers)}]
health = {{ kind = "tcp", interval = "200ms", timeout = "150ms", rise = 1, fall = 2 }}

[control]
socket = "{lab.workdir}/ctl.sock"

[log]
level = "debug"

[kernel]
table = "{lab.prefix}"
"""


def start_fulcrum(lab: Lab, toml: str) -> subprocess.Popen[bytes]:
    config = lab.workdir / "lb0.toml"
    config.write_text(toml)
    process = lab["lb0"].popen(str(FULCRUM), "run", "-c", str(config), log=lab.workdir / "lb0.log")
    wait_for(lambda: table_exists(lab["lb0"], lab.prefix) or table_exists(lab["lb0"], lab.prefix, "netdev")
             or process.poll() is not None, 20,
             what="fulcrum's nftables table on lb0")
    assert process.poll() is None, (lab.workdir / "lb0.log").read_text()
    return process


def table_exists(node: Node, name: str, family: str = "inet") -> bool:
    return node.run("nft", "list", "table", family, name, check=False).returncode == 0


def tables(node: Node) -> list[str]:
    return sorted(line.strip() for line in node.run("nft", "list", "tables").stdout.splitlines())


def ctl(lab: Lab, *words: str) -> str:
    result = lab["lb0"].run(str(FULCRUM), "ctl", "-s", str(lab.workdir / "ctl.sock"), *words, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


class Holder:
    """Long-lived flows from the client, checked every 50 ms."""

    def __init__(self, lab: Lab, host: str, count: int):
        script = lab.workdir / "holder.py"
        script.write_text(HOLDER)
        self.stop_file = lab.workdir / f"stop-{time.monotonic_ns()}"
        self.process = lab["client"].popen(sys.executable, str(script), host, str(PORT), str(count),
                                           str(self.stop_file), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, self.process.stderr.read() if self.process.stderr else "holder died"
        self.servers: list[str] = json.loads(line)["ready"]

    def finish(self) -> dict[str, int]:
        self.stop_file.touch()
        out, err = self.process.communicate(timeout=70)
        assert self.process.returncode == 0, err
        report: dict[str, int] = json.loads(out.splitlines()[-1])
        return report
