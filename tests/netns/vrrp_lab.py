"""Pieces shared by the VRRP namespace scenarios: configurations, a tiny server that
answers with its node's name on the VIP, and a client that polls the VIP."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import VIP4, VIP6, Lab, Node
from tests.support import FULCRUM

PORT = 8080

# Listens on the VIP before it is local (IP_FREEBIND), answers each connection with
# the node's name: the client sees which node holds the VIP.
NAME_SERVER = """
import socket, sys
name, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
server = socket.socket(family, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.setsockopt(socket.SOL_IP, 15, 1)  # IP_FREEBIND
server.bind((host, port))
server.listen(64)
while True:
    conn, _ = server.accept()
    conn.sendall(name.encode())
    conn.close()
"""

def vrrp_toml(priority: int, advert_interval: str, vrid: int = 51, preempt: bool = True,
              extra: str = "", families: tuple[str, ...] = ("v4", "v6")) -> str:
    """Two virtual routers, v4 and v6 (or those of `families`); `extra` is TOML added to
    each, "{family}" replaced."""
    routers = []
    for family, vip in (("v4", f"{VIP4}/24"), ("v6", f"{VIP6}/64")):
        if family not in families:
            continue
        routers.append(f"""
[cluster.virtual_routers.{family}]
vrid = {vrid}
interface = "eth0"
priority = {priority}
advert_interval = "{advert_interval}"
preempt = {str(preempt).lower()}
vips = ["{vip}"]
{extra.replace("{family}", family)}
""")
    return "".join(routers)


def start_runner(node: Node, workdir: Path, toml: str) -> subprocess.Popen[bytes]:
    config = workdir / f"{node.name}.toml"
    config.write_text(toml)
    return node.popen(sys.executable, "-m", "fulcrum.cluster.runner", str(config),
                      log=workdir / f"{node.name}.log")


def start_name_servers(node: Node, workdir: Path) -> list[subprocess.Popen[bytes]]:
    script = workdir / "name_server.py"
    script.write_text(NAME_SERVER)
    return [node.popen(sys.executable, str(script), node.name, vip, str(PORT)) for vip in (VIP4, VIP6)]


def ask_vip(client: Node, vip: str) -> str:
    """Which node answers on the VIP now ("" if none). The connect and the answer get 2 s:
    a loaded machine may take longer than the 0.2 s this once allowed, and an answer that
    is only late must not read as "nobody" (callers poll; none waits for "")."""
    script = (
        "import socket,sys\n"
        "f = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET\n"
        "try:\n"
        "    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)\n"
        "    print(c.recv(16).decode())\n"
        "except OSError:\n"
        "    print('')\n")
    return client.run(sys.executable, "-c", script, vip, str(PORT)).stdout.strip()


def keepalived_conf(priority: int, advert_interval: float, vrid: int = 51,
                    unicast: dict[str, tuple[str, str]] | None = None, version: int | None = 3,
                    families: tuple[str, ...] = ("v4", "v6"), password: str | None = None) -> str:
    """v4 and v6 instances (or those of `families`); `unicast` maps a family to (our
    address, the peer's); `version` None leaves keepalived's default (VRRPv2 for IPv4);
    `password`: `authentication { auth_type PASS }`."""
    instances = []
    for family, vip in (("v4", f"{VIP4}/24"), ("v6", f"{VIP6}/64")):
        if family not in families:
            continue
        peering = ""
        if unicast:
            source, peer = unicast[family]
            peering = f"    unicast_src_ip {source}\n    unicast_peer {{\n        {peer}\n    }}\n"
        if password is not None:
            peering += f"    authentication {{\n        auth_type PASS\n        auth_pass {password}\n    }}\n"
        instances.append(f"""
vrrp_instance {family} {{
    interface eth0
    state BACKUP
    virtual_router_id {vrid}
    priority {priority}
    advert_int {advert_interval}
{peering}    virtual_ipaddress {{
        {vip} dev eth0
    }}
}}
""")
    version_line = f"    vrrp_version {version}\n" if version is not None else ""
    return f"global_defs {{\n{version_line}    router_id ka\n}}\n" + "".join(instances)


def start_keepalived(node: Node, workdir: Path, conf: str) -> subprocess.Popen[bytes]:
    """Debian's keepalived in the foreground (-n), logging to its log file (-l -D)."""
    path = workdir / f"{node.name}-keepalived.conf"
    path.write_text(conf)
    pids = {flag: str(workdir / f"{node.name}-keepalived{flag}.pid") for flag in ("-p", "-r", "-c")}
    return node.popen("keepalived", "-n", "-l", "-D", "--dont-respawn", "-f", str(path),
                      *[part for flag, pid in pids.items() for part in (flag, pid)],
                      log=workdir / f"{node.name}-keepalived.log")


def transitions(log: Path, router: str = "v4") -> list[str]:
    """The states a router went through, from the runner's log."""
    states = []
    for line in log.read_text().splitlines() if log.exists() else []:
        state = line.rsplit(" -> ", 1)[-1]
        if f" {router}: " in line and state in ("initialize", "backup", "master"):
            states.append(state)
    return states


def node_toml(lab: Lab, priority: int, advert_interval: str = "100ms") -> str:
    """A whole node: a TCP service on both VIPs in front of rs1 and rs2, and VRRP."""
    servers = ", ".join(f'"{lab[name].v4}:{PORT}"' for name in ("rs1", "rs2"))
    toml = f"""
[services.web]
listen = ["{VIP4}:{PORT}", "[{VIP6}]:{PORT}"]
pool = "web"

[pools.web]
scheduler = "rr"
servers = [{servers}]
health = {{ kind = "tcp", interval = "200ms", timeout = "100ms" }}
"""
    for family, vip in (("v4", f"{VIP4}/24"), ("v6", f"{VIP6}/64")):
        toml += f"""
[cluster.virtual_routers.{family}]
vrid = 61
interface = "eth0"
priority = {priority}
advert_interval = "{advert_interval}"
vips = ["{vip}"]
"""
    return toml


def start_node(node: Node, lab: Lab, priority: int, advert_interval: str = "100ms") -> subprocess.Popen[bytes]:
    """`fulcrum run` in the node's namespace."""
    config = lab.workdir / f"{node.name}-node.toml"
    config.write_text(node_toml(lab, priority, advert_interval))
    return node.popen(str(FULCRUM), "run", "-c", str(config), log=lab.workdir / f"{node.name}.log")
