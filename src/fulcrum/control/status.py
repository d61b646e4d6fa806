"""What a node is doing, as one plain dict: the `status` command of the command table
(so the REST API's /api/v1/status, `fulcrum ctl status`, the web UI's status page, the
Prometheus exporter and penctl), the SIGUSR1 log dump; and pen's HTML status page (pen -w)."""

from __future__ import annotations

import html
import os
import socket
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fulcrum import __version__
from fulcrum.balance.base import Backend
from fulcrum.balance.pool import PoolRuntime
from fulcrum.files import atomic_write
from fulcrum.observe import Totals

if TYPE_CHECKING:
    from fulcrum.cluster.process import EngineProcess
    from fulcrum.config.sync import SyncSettings
    from fulcrum.health.monitor import HealthMonitor
    from fulcrum.nodelike import NodeLike


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


def _server(pool: PoolRuntime, index: int | None, backend: Backend, now: float,
            check: dict[str, Any] | None, totals: Totals) -> dict[str, Any]:
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
        "total": backend.total,  # the scheduler's own count (pen's page shows it)
        "traffic": backend.traffic,
        "failures": backend.failures,  # failed connects (passive health, pen's blacklist)
        "check": _check(check, now),
        **_totals(totals),
    }


def _check(check: dict[str, Any] | None, now: float) -> dict[str, Any] | None:
    """The last health result: kind, ok, reason, seconds since it and since the last up/down change."""
    if check is None:
        return None
    last, change = check.get("last_check"), check.get("last_change")
    return {
        "kind": check["kind"], "ok": check.get("last_ok"), "reason": check["last_reason"],
        "ago": None if last is None else round(now - last, 3),
        "since_change": None if change is None else round(now - change, 3),
        "duration": check.get("last_duration"),
        "counter": check["counter"], "counter_max": check["counter_max"],
        "rise": check["rise"], "fall": check["fall"],
    }


def _totals(totals: Totals) -> dict[str, Any]:
    """What the observer counted of finished requests and connections (observe.py)."""
    counted = totals.as_dict()
    return {"requests": counted["requests"], "connections": counted["connections"],
            "bytes_in": counted["bytes_in"], "bytes_out": counted["bytes_out"],
            "statuses": counted["statuses"], "errors": counted["errors"],
            "terminations": counted["terminations"]}


def node_name(node: NodeLike) -> str:
    sync: SyncSettings | None = getattr(node.config, "sync", None)
    return sync.node_id() if sync is not None else socket.gethostname()


def status(node: NodeLike) -> dict[str, Any]:
    """The node, every service, pool and server, and every VRRP router, as plain data.

    Running totals (requests, connections, bytes, status classes) come from the node's
    observer only; active connections, health and weights are the pools' live state.
    With several worker processes the figures are the whole node's, asked from the
    first worker (the control socket and the admin plane): counters and connection
    counts from shared memory, totals as the other workers sent them at most a second
    ago (fulcrum/shared/)."""
    from fulcrum.control.versions import current_version
    from fulcrum.shared.totals import node_connections, node_observer, service_active

    config = node.config
    now = node.now()
    # getattr: pen's control port and tests drive this with nodes that have only pools
    health: HealthMonitor | None = getattr(node, "health", None)
    checks = health.status() if health is not None else {}
    observer = node_observer(node)
    pools: dict[str, Any] = {}
    for name, pool in node.pools.items():
        pool.sync_counters()  # node-wide counts with workers > 1
        clients = pool.clients
        pool_checks = checks.get(name, {})
        pools[name] = {
            "scheduler": pool.config.scheduler,
            "sticky": pool.config.sticky.mode,
            "stubborn": pool.config.stubborn,
            "health_kind": pool.config.health.kind,
            "clients": len(clients) if clients is not None else 0,
            "clients_max": pool.config.sticky.table_size,
            "servers": [_server(pool, i, b, now, pool_checks.get(b.key), observer.server_totals(name, b.key))
                        for i, b in enumerate(pool.backends)],
            "emergency": _server(pool, None, pool.emergency, now,
                                 pool_checks.get(f"{pool.emergency.key} (emergency)"),
                                 observer.server_totals(name, pool.emergency.key))
            if pool.emergency else None,
        }
    services = {}
    for name, service in config.services.items():
        services[name] = {
            "listen": [str(e) for e in service.listen], "pool": service.pool,
            "mode": service.mode, "topology": service.topology,
            "active": service_active(node, name),
            "max_connections": service.max_connections,
            **_totals(observer.service_totals(name)),
        }
    engine: EngineProcess | None = getattr(node, "engine", None)
    started: float = getattr(node, "started_at", time.time())
    return {
        "node": node_name(node),
        "version": __version__,
        "pid": os.getpid(),
        "started": started,
        "uptime": round(time.time() - started, 3),
        "config_version": current_version(node),
        "reloads": dict(getattr(node, "reload_results", {})),  # re-reads of the file: applied, rejected
        "workers": config.workers,
        "connections": node_connections(node),
        "max_connections": config.max_connections,
        "services": services,
        "pools": pools,
        "routers": dict(engine.routers) if engine is not None else {},
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


def render_pen_html(node: NodeLike, wall: datetime | None = None) -> str:
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


def write_status_file(node: NodeLike, path: str | os.PathLike[str]) -> None:
    atomic_write(path, render_pen_html(node), 0o644)
