"""What a node is doing, as one dict (for the API, the CLI, the web UI, penctl and SIGUSR1),
and pen's HTML status page (pen -w)."""

from __future__ import annotations

import html
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from fulcrum.balance.base import Backend
from fulcrum.balance.pool import PoolRuntime


def server_state(pool: PoolRuntime, backend: Backend, now: float) -> str:
    """One word: disabled, down, blacklisted, drain, full, or up."""
    if backend.state == "disabled":
        return "disabled"
    if not backend.healthy:
        return "down"
    if now < backend.blacklisted_until:
        return "blacklisted"
    if backend.state == "drain":
        return "drain"
    if not pool.usable(backend, now):
        return "full" if backend.weight else "quiesced"
    return "up"


def _server(pool: PoolRuntime, index: int | None, backend: Backend, now: float) -> dict[str, Any]:
    return {
        "index": index,
        "key": backend.key,
        "address": backend.address,
        "port": backend.port,
        "state": backend.state,
        "health": "up" if backend.healthy else "down",
        "status": server_state(pool, backend, now),
        "blacklisted_for": max(0.0, backend.blacklisted_until - now),
        "weight": backend.weight,
        "max_connections": backend.max_connections,
        "hard_limit": backend.hard_limit,
        "priority": backend.priority,
        "backup": backend.backup,
        "active": backend.active,
        "total": backend.total,
        "traffic": backend.traffic,
        "failures": backend.failures,
    }


def status(node: Any) -> dict[str, Any]:
    config = node.config
    now = node.now()
    pools: dict[str, Any] = {}
    for name, pool in node.pools.items():
        clients = pool.clients
        pools[name] = {
            "scheduler": pool.config.scheduler,
            "sticky": pool.config.sticky.mode,
            "stubborn": pool.config.stubborn,
            "clients": len(clients) if clients is not None else 0,
            "clients_max": pool.config.sticky.table_size,
            "servers": [_server(pool, i, b, now) for i, b in enumerate(pool.backends)],
            "emergency": _server(pool, None, pool.emergency, now) if pool.emergency else None,
        }
    services = {
        name: {"listen": [str(e) for e in service.listen], "pool": service.pool,
               "mode": service.mode, "topology": service.topology}
        for name, service in config.services.items()
    }
    return {
        "connections": node.connections,
        "max_connections": config.max_connections,
        "services": services,
        "pools": pools,
    }


# -- pen's HTML status page -------------------------------------------------------------

_HEAD = '<td bgcolor="#80f080">{}</td>\n'


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    out = ['<table bgcolor="#c0c0c0">\n<tr>\n', *(_HEAD.format(h) for h in headers), "</tr>\n"]
    for row in rows:
        out.append("<tr>\n")
        out.extend(f"<td>{html.escape(str(cell))}</td>\n" for cell in row)
        out.append("</tr>\n")
    out.append("</table>\n")
    return "".join(out)


def render_pen_html(node: Any, wall: datetime | None = None) -> str:
    """pen's status page: the same sections and columns as pen 0.34's webstats().

    Differences, because fulcrum counts differently: `status` is a word (up, down,
    blacklisted, ...) rather than pen's blacklist timestamp; `sent` is the bytes relayed
    in both directions and `received` is blank; per-client byte counters and the
    per-connection table are not kept."""
    info = status(node)
    stamp = (wall or datetime.now()).strftime("%Y-%m-%d %H:%M:%S")
    now = node.now()
    servers = [(name, s) for name, p in info["pools"].items() for s in p["servers"]]
    several = len(info["pools"]) > 1
    out = ["<html>\n<head>\n<title>Pen status page</title>\n</head>\n",
           '<body bgcolor="#ffffff"><h1>Pen status page</h1>\n',
           f"Time {stamp}, {len(servers)} servers, {info['connections']} current<p>\n"]
    rows = [[f"{name}/{s['index']}" if several else s["index"], s["address"], s["status"], s["port"],
             s["active"], s["max_connections"], s["hard_limit"], s["traffic"], "", s["weight"],
             s["priority"]] for name, s in servers]
    out.append(_table(["server", "address", "status", "port", "connections", "max soft", "max hard",
                       "sent", "received", "weight", "prio"], rows))
    out.append("<h2>Active clients</h2>")
    out.append("Max number of clients: {}<p>".format(
        sum(p["clients_max"] for p in info["pools"].values() if p["sticky"] == "source")))
    client_rows = []
    for name, pool in node.pools.items():
        if pool.clients is None:
            continue
        index = {b.key: i for i, b in enumerate(pool.backends)}
        for i, (client, server, seen) in enumerate(pool.clients.items()):
            where = index.get(server, server)
            client_rows.append([i, client, int(now - seen), f"{name}/{where}" if several else where])
    out.append(_table(["client", "address", "age(secs)", "last server"], client_rows))
    out.append("<h2>Active connections</h2>")
    out.append(f"Number of connections: {info['max_connections']} max, {info['connections']} used<p>\n")
    out.append("</body>\n</html>\n")
    return "".join(out)


def atomic_write(path: str | os.PathLike[str], body: str) -> None:
    """Write `body` to `path` so readers see the old file or the new one, never half of one."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(body)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_status_file(node: Any, path: str | os.PathLike[str]) -> None:
    atomic_write(path, render_pen_html(node))
