"""Pieces of the LVS-style scenarios (imported ipvsadm rules and lvs.cf, failover of
kernel services): servers that answer with their name over TCP (HTTP) and UDP, a client
that asks the VIP, and the routing a `nat` topology needs on one segment."""

from __future__ import annotations

import sys

from conftest import Lab, Node

PORT = 8080
GATEWAY4 = "198.18.0.254"  # lvs.cf's nat_router: the servers' gateway, moved with the master

# Answers every TCP connection with an HTTP response whose body is the server's name, and
# every UDP datagram with the name; port and address from argv.
NAME_SERVER = """
import socket, sys, threading
name, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
udp = socket.socket(family, socket.SOCK_DGRAM)
udp.bind((host, port))
def answer_udp():
    while True:
        _, peer = udp.recvfrom(2048)
        udp.sendto(name.encode(), peer)
threading.Thread(target=answer_udp, daemon=True).start()
server = socket.socket(family, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((host, port))
server.listen(128)
while True:
    conn, _ = server.accept()
    conn.settimeout(2)
    try:
        conn.recv(4096)
        conn.sendall(b"HTTP/1.0 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n%s" % (len(name), name.encode()))
    except OSError:
        pass
    conn.close()
"""


def start_name_servers(lab: Lab, port: int = PORT) -> None:
    script = lab.workdir / "lvs_name_server.py"
    script.write_text(NAME_SERVER)
    for name in ("rs1", "rs2"):
        lab[name].popen(sys.executable, str(script), name, lab[name].v4, str(port),
                        log=lab.workdir / f"{name}-server.log")


def ask_tcp(client: Node, address: str, port: int = PORT) -> str:
    """The body of a GET through address:port ("" on failure)."""
    script = ("import socket,sys\n"
              "try:\n"
              "    s=socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=2)\n"
              "    s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')\n"
              "    d=b''\n"
              "    while (c:=s.recv(4096)): d+=c\n"
              "    print(d.rsplit(b'\\r\\n\\r\\n',1)[-1].decode())\n"
              "except OSError:\n"
              "    print('')\n")
    return client.run(sys.executable, "-c", script, address, str(port), check=False).stdout.strip()


def ask_udp(client: Node, address: str, port: int = PORT) -> str:
    script = ("import socket,sys\n"
              "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
              "s.settimeout(1)\n"
              "try:\n"
              "    s.sendto(b'who', (sys.argv[1],int(sys.argv[2])))\n"
              "    print(s.recv(64).decode())\n"
              "except OSError:\n"
              "    print('')\n")
    return client.run(sys.executable, "-c", script, address, str(port), check=False).stdout.strip()


def nat_routing(lab: Lab, balancers: list[str], gateway: str) -> None:
    """Half-NAT on one segment: the servers send their replies to the client through
    `gateway` (the balancer), the balancers forward, and nobody is told by an ICMP
    redirect to go around the balancer (LVS-NAT's one-network setup)."""
    for name in balancers:
        lab[name].run("sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.send_redirects=0",
                      "net.ipv4.conf.eth0.send_redirects=0", "net.ipv4.conf.default.send_redirects=0")
    for name in ("rs1", "rs2"):
        lab[name].run("sysctl", "-qw", "net.ipv4.conf.all.accept_redirects=0",
                      "net.ipv4.conf.eth0.accept_redirects=0")
        lab[name].run("ip", "route", "add", f"{lab['client'].v4}/32", "via", gateway)
