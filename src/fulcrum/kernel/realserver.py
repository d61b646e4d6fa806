"""`fulcrum realserver setup|teardown`: prepare a real server of a `dsr` service (IPVS
direct routing, LVS-DR).

The balancer forwards frames with the VIP still as their destination, so each server
must accept the VIP as its own without ever claiming it on the shared segment:
- the VIPs go on the loopback device `lo` (host routes, /32 and /128);
- IPv4: `arp_ignore = 1` (answer ARP only for addresses on the asking interface) and
  `arp_announce = 2` (never use a loopback VIP as the source of our own ARP requests),
  set on `all`, which the kernel combines with each interface's value by maximum;
- IPv6: Linux answers neighbour solicitations only for addresses on the interface they
  arrive on (RFC 4861 section 7.2.3 leaves it to the node), so a VIP on `lo` is never
  advertised on the segment: no switch is needed; the address is added without
  duplicate address detection (nodad) so it is usable at once.

`setup` is idempotent and records in a state file exactly what it changed (addresses it
added, sysctls with their previous values); `teardown` undoes exactly that and removes
the file. An address that was on `lo` before setup is left alone by teardown."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

DEFAULT_STATE = "/run/fulcrum/realserver.json"
DEVICE = "lo"
ARP_SYSCTLS = {"net/ipv4/conf/all/arp_ignore": "1", "net/ipv4/conf/all/arp_announce": "2"}


class Addresses(Protocol):
    """A device's addresses over netlink: cluster/vip.py's Interface, which the CLI
    hands in (the kernel plane does not import the cluster plane)."""

    def has(self, vip: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> bool: ...
    def add(self, vip: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> None: ...
    def remove(self, vip: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> None: ...
    def close(self) -> None: ...


class RealserverError(Exception):
    """One line for the operator."""


def _vip(text: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    try:
        address = ipaddress.ip_address(text)
    except ValueError as err:
        raise RealserverError(f"--vip {text!r} is not an IP address") from err
    return ipaddress.ip_interface(f"{address}/{address.max_prefixlen}")


def _read_state(path: Path) -> dict[str, Any]:
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return {"addresses": [], "sysctls": {}}
    except (OSError, ValueError) as err:
        raise RealserverError(f"cannot read the state file {path}: {err}") from err
    return state


def _sysctl(name: str, value: str | None = None) -> str:
    path = Path("/proc/sys") / name
    try:
        if value is not None:
            path.write_text(value)
        return path.read_text().strip()
    except OSError as err:
        raise RealserverError(f"cannot {'set' if value is not None else 'read'} {name.replace('/', '.')}: "
                              f"{err.strerror or err}") from err


def setup(vips: list[str], interface: Callable[[str], Addresses], state_file: str = DEFAULT_STATE) -> list[str]:
    """Put `vips` on lo with the ARP settings; returns what was done (for the operator)."""
    wanted = [_vip(v) for v in vips]
    path = Path(state_file)
    state = _read_state(path)
    done = []
    if any(v.version == 4 for v in wanted):
        for name, value in ARP_SYSCTLS.items():
            before = _sysctl(name)
            if before != value:
                state["sysctls"].setdefault(name, before)  # the value before our first setup
                _sysctl(name, value)
                done.append(f"{name.replace('/', '.')} = {value} (was {before})")
    lo = interface(DEVICE)
    try:
        for vip in wanted:
            if lo.has(vip):
                continue  # ours from an earlier setup, or the operator's: not recorded twice
            lo.add(vip)
            state["addresses"].append(str(vip))
            done.append(f"{vip} added to {DEVICE}")
    finally:
        lo.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=1) + "\n")
    return done


def teardown(interface: Callable[[str], Addresses], state_file: str = DEFAULT_STATE) -> list[str]:
    """Undo what setup recorded; returns what was done."""
    path = Path(state_file)
    if not path.exists():
        return []
    state = _read_state(path)
    done = []
    lo = interface(DEVICE)
    try:
        for text in state["addresses"]:
            lo.remove(ipaddress.ip_interface(text))
            done.append(f"{text} removed from {DEVICE}")
    finally:
        lo.close()
    for name, value in state["sysctls"].items():
        _sysctl(name, value)
        done.append(f"{name.replace('/', '.')} = {value} (restored)")
    path.unlink()
    return done
