"""What `fulcrum check` adds to validation: secrets redacted from the effective configuration
it prints, and warnings about settings that are valid but probably not what was meant."""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import socket
from typing import Any

from fulcrum.config.model import Config

REDACTED = "<redacted>"
# sticky.secret, sync.secret, VRRP authentication passwords, admin password hashes and tokens;
# `*_file` names a file (shown: it is where the secret is, not the secret)
_SECRET = re.compile(r"(secret|password|passwd|token|auth_pass|passphrase|api_key)s?$|_hash$")


def redacted(data: Any) -> Any:
    """A copy of a configuration dump with every secret value replaced."""
    if isinstance(data, dict):
        return {key: REDACTED if (isinstance(key, str) and _SECRET.search(key) and value not in (None, "", [], {}))
                else redacted(value) for key, value in data.items()}
    if isinstance(data, list):
        return [redacted(item) for item in data]
    return data


def warnings(config: Config, is_local: Any = None) -> list[tuple[str, str]]:
    """(key path, advice) for valid settings that are likely mistakes. `is_local(host)` tells
    whether an address is on this machine (default: try to bind it)."""
    local = is_local or address_is_local
    out: list[tuple[str, str]] = []
    vips = {vip.ip for router in (config.cluster.virtual_routers.values() if config.cluster else [])
            for vip in router.vips}
    for name, service in config.services.items():
        for i, endpoint in enumerate(service.listen):
            host = endpoint.host
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                continue
            if address.is_unspecified or address in vips or local(host):
                continue
            out.append((f"services.{name}.listen[{i}]",
                        f"{endpoint} is not an address of this machine nor a VIP of its cluster section: "
                        "the service only serves once something else adds it"))
    for name, pool in config.pools.items():
        if pool.sticky.mode == "insert" and not pool.sticky.secret:
            out.append((f"pools.{name}.sticky.secret",
                        "not set: the cookie key is derived from the pool, so anyone who reads this "
                        "configuration's pool can forge cookies; set a random secret, the same on every node"))
        if len(pool.servers) == 1 and pool.health.kind == "none" and pool.emergency is None:
            out.append((f"pools.{name}", "one server and no health check: when it fails, clients get "
                                         "errors and nothing says so until traffic fails"))
        elif pool.health.kind == "none" and not pool.health.passive:
            out.append((f"pools.{name}.health", "no active and no passive check: a dead server keeps "
                                                "getting its share of clients"))
    if config.sync is not None and getattr(config.sync, "secret", None):
        out.append(("sync.secret", "written in the configuration (which sync copies to peers' files "
                                   "and `check` prints redacted); prefer secret_file, mode 0600"))
    cpus = os.cpu_count() or 1
    if config.workers > cpus:
        out.append(("workers", f"{config.workers} workers on {cpus} CPU(s): more processes than cores only adds switching"))
    if config.control.pen_port is not None and not ipaddress.ip_address(config.control.pen_port.host).is_loopback:
        out.append(("control.pen_port", "pen's control port has no authentication: keep it on a loopback address"))
    return out


def address_is_local(host: str) -> bool:
    """True when `host` is assigned on this machine (binding it without IP_FREEBIND works)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, 0))
        except OSError as err:
            return err.errno != errno.EADDRNOTAVAIL
    return True
