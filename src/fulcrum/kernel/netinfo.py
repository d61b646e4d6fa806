"""Edge: what dsr needs to know of the local network (devices, MAC addresses) and the
forwarding switches nat and fullnat depend on. Read with iproute2's JSON output."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

IP_TIMEOUT = 5.0
RESOLVE_WAIT = 1.0  # seconds to wait for an ARP/ND answer
FAILED_STATES = {"INCOMPLETE", "FAILED"}


def _ip_json(*args: str) -> list[dict[str, Any]]:
    try:
        result = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, timeout=IP_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if result.returncode != 0 or not result.stdout.strip():
        return []
    data = json.loads(result.stdout)
    return data if isinstance(data, list) else []


def route_device(address: str) -> str | None:
    """The device the kernel would send to `address` through."""
    routes = _ip_json("route", "get", address)
    return routes[0].get("dev") if routes else None


def link_mac(device: str) -> str | None:
    links = _ip_json("link", "show", "dev", device)
    return links[0].get("address") if links else None


def _neighbour(address: str, device: str) -> str | None:
    for entry in _ip_json("neigh", "show", "to", address, "dev", device):
        states = set(entry.get("state", []))
        if entry.get("lladdr") and not states & FAILED_STATES:
            return str(entry["lladdr"])
    return None


def resolve_mac(address: str, device: str) -> str | None:
    """The MAC address of a neighbour on `device`; one datagram to its discard port makes
    the kernel ask (ARP or ND) when it does not know it yet. None: no answer."""
    mac = _neighbour(address, device)
    if mac is not None:
        return mac
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.setblocking(False)
            probe.sendto(b"", (address, 9))
    except OSError:
        pass
    deadline = time.monotonic() + RESOLVE_WAIT
    while time.monotonic() < deadline:
        time.sleep(0.05)
        mac = _neighbour(address, device)
        if mac is not None:
            return mac
    return None


def forwarding_off(versions: set[int]) -> list[str]:
    """The forwarding sysctls among `versions` (4, 6) that are off in this namespace."""
    paths = {4: "/proc/sys/net/ipv4/ip_forward", 6: "/proc/sys/net/ipv6/conf/all/forwarding"}
    names = {4: "net.ipv4.ip_forward", 6: "net.ipv6.conf.all.forwarding"}
    off = []
    for version in sorted(versions):
        try:
            if Path(paths[version]).read_text().strip() == "0":
                off.append(names[version])
        except OSError:
            pass
    return off
