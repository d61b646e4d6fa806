"""A small network in Linux namespaces: client, lb0, lb1 and two real servers on one
bridge, with addresses from 198.18.0.0/15 and fd00:f0c::/48 only.

Every namespace is named with a per-run prefix and deleted on teardown, also when the
test fails; the bridge and the veth pairs live inside those namespaces, so the root
namespace's links, addresses, routes and firewall are never touched."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# The labs here import tests.support (the helpers every test shares); this folder is not a
# package, and its lab scripts also run as programs, so the checkout's root goes on the path.
ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

PREFIX = f"fc{os.getpid()}"
NODES = {  # name: last byte of its addresses
    "client": 10,
    "lb0": 1,
    "lb1": 2,
    "rs1": 21,
    "rs2": 22,
}
V4_NET, V6_NET = "198.18.0.", "fd00:f0c::"
VIP4, VIP6 = "198.18.0.100", "fd00:f0c::100"
_labs = itertools.count()


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=check)


def _unavailable() -> str | None:
    if os.geteuid() != 0:
        return "network namespace tests need root (CAP_NET_ADMIN, CAP_NET_RAW)"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    probe = f"{PREFIX}probe"
    result = _ip("netns", "add", probe, check=False)
    if result.returncode != 0:
        return f"`ip netns add` does not work here: {result.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


@dataclass
class Node:
    name: str
    netns: str
    v4: str
    v6: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def run(self, *command: str, check: bool = True, timeout: float = 10) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.netns, *command], capture_output=True,
                              text=True, timeout=timeout, check=check)

    def popen(self, *command: str, log: Path | None = None, **kwargs: object) -> subprocess.Popen[bytes]:
        """Start a process in this namespace (stopped at teardown); output to `log`."""
        with open(log or os.devnull, "ab") as out:  # the child keeps its own copy
            kwargs.setdefault("stdout", out)
            kwargs.setdefault("stderr", subprocess.STDOUT)
            process = subprocess.Popen(["ip", "netns", "exec", self.netns, *command],
                                       **kwargs)  # type: ignore[call-overload]
        self.processes.append(process)
        return process

    def addresses(self, device: str = "eth0") -> list[str]:
        result = _ip("-n", self.netns, "-o", "addr", "show", "dev", device)
        return [line.split()[3].split("/")[0] for line in result.stdout.splitlines()]

    def has_address(self, address: str) -> bool:
        return address in self.addresses()


@dataclass
class Lab:
    prefix: str
    nodes: dict[str, Node]
    workdir: Path

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]


def _build(prefix: str, workdir: Path) -> Lab:
    switch = f"{prefix}sw"
    _ip("netns", "add", switch)
    _ip("-n", switch, "link", "add", "br0", "type", "bridge")
    _ip("-n", switch, "link", "set", "br0", "up")
    nodes = {}
    for name, host in NODES.items():
        netns = f"{prefix}{name}"
        _ip("netns", "add", netns)
        node = Node(name, netns, f"{V4_NET}{host}", f"{V6_NET}{host:x}")
        # Addresses usable at once: no duplicate address detection in a lab we built.
        node.run("sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
        # Both veth ends are created directly inside namespaces, never in the root one.
        _ip("link", "add", "eth0", "netns", netns, "type", "veth", "peer", "name", f"p-{name}",
            "netns", switch)
        _ip("-n", switch, "link", "set", f"p-{name}", "master", "br0", "up")
        _ip("-n", netns, "link", "set", "lo", "up")
        _ip("-n", netns, "addr", "add", f"{node.v4}/24", "dev", "eth0")
        _ip("-n", netns, "addr", "add", f"{node.v6}/64", "dev", "eth0", "nodad")
        _ip("-n", netns, "link", "set", "eth0", "up")
        nodes[name] = node
    return Lab(prefix, nodes, workdir)


def _teardown(lab_prefix: str, nodes: list[Node]) -> None:
    for node in nodes:
        for process in node.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in node.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
    # Anything still running inside our own namespaces was started by this test.
    listed = _ip("netns", "list", check=False).stdout.split()
    ours = [name for name in listed if name.startswith(lab_prefix)]
    for netns in ours:
        for pid in _ip("netns", "pids", netns, check=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
    for netns in ours:
        _ip("netns", "del", netns, check=False)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    reason = _unavailable()
    if reason:
        pytest.skip(reason)
    prefix = f"{PREFIX}n{next(_labs)}"
    built: Lab | None = None
    try:
        built = _build(prefix, tmp_path)
        yield built
    finally:
        _teardown(prefix, list(built.nodes.values()) if built else [])
