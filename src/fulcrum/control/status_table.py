"""`fulcrum ctl status` as a table an operator reads at a glance, in the spirit of
`ipvsadm -L -n` and HAProxy's stats: service -> pool -> server, then the VRRP routers.

Pure: it renders the dict of control/status.py's `status()` (and, for rates, a second one
taken `interval` seconds later — rates are the difference of the observer's running totals,
like ipvsadm --rate). Fields a node does not report are shown as `-`."""

from __future__ import annotations

from typing import Any


def duration(seconds: float | None) -> str:
    """3 -> 3s, 200 -> 3m20s, 7500 -> 2h05m, 300000 -> 3d11h."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _finished(entry: dict[str, Any]) -> int | None:
    """Requests (http) plus connections (tcp) the observer counted; None when not reported."""
    if "requests" not in entry and "connections" not in entry:
        return None
    return int(entry.get("requests") or 0) + int(entry.get("connections") or 0)


def _rate(now: dict[str, Any], before: dict[str, Any] | None, interval: float) -> str:
    if before is None or interval <= 0:
        return "-"
    a, b = _finished(now), _finished(before)
    if a is None or b is None:
        return "-"
    return f"{max(0, a - b) / interval:.1f}"


def _health(server: dict[str, Any]) -> str:
    check = server.get("check")
    if not check:
        health: str = server.get("health", "-")
        return health
    ok = check.get("ok")
    word = "-" if ok is None else ("ok" if ok else "fail")
    reason = check.get("reason") or ""
    ago = check.get("ago")
    text = f"{check.get('kind', '?')} {word}"
    if reason and reason != word:
        text += f" ({reason})"
    if ago is not None:
        text += f" {duration(ago)} ago"
    return text


def _table(rows: list[list[str]], indent: str = "") -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
            for row in rows]


def _server_rows(pool: dict[str, Any], before: dict[str, Any] | None, interval: float) -> list[list[str]]:
    old = {s.get("key"): s for s in (before or {}).get("servers", [])} if before else {}
    rows = []
    servers = list(pool.get("servers", []))
    if pool.get("emergency"):
        servers.append(dict(pool["emergency"], key=f"{pool['emergency'].get('key')} (emergency)"))
    for server in servers:
        flags = [f for f in ("backup",) if server.get(f)]
        check = server.get("check") or {}
        total = _finished(server)
        rows.append([
            "-> " + str(server.get("key", "?")) + (" (backup)" if flags else ""),
            str(server.get("status", server.get("state", "-"))),
            str(server.get("weight", "-")),
            _health(server),
            duration(check.get("since_change")),
            str(server.get("active", "-")),
            "-" if total is None else str(total),
            _rate(server, old.get(server.get("key")), interval),
            str(server.get("errors", "-")),
        ])
    return rows


def render(status: dict[str, Any], before: dict[str, Any] | None = None, interval: float = 0.0) -> str:
    out: list[str] = []
    head = [f"fulcrum {status.get('version', '?')}"]
    if status.get("node"):
        head.append(f"on {status['node']}")
    if status.get("pid"):
        head.append(f"pid {status['pid']}")
    if "uptime" in status:
        head.append(f"up {duration(status['uptime'])}")
    if status.get("config_version") is not None:
        head.append(f"config version {status['config_version']}")
    if status.get("workers"):
        head.append(f"{status['workers']} worker(s)")
    limit = status.get("max_connections")
    head.append(f"connections {status.get('connections', 0)}/{limit if limit else 'unlimited'}")
    out.append(", ".join(head))
    out.append("")

    pools = status.get("pools", {})
    old_pools = (before or {}).get("pools", {})
    old_services = (before or {}).get("services", {})
    rows: list[list[str]] = [["SERVICE / POOL / SERVER", "STATE", "WEIGHT", "HEALTH", "SINCE",
                              "ACTIVE", "TOTAL", "RATE/s", "ERRORS"]]
    shown: set[str] = set()
    for name, service in status.get("services", {}).items():
        total = _finished(service)
        rows.append([f"{name} {service.get('mode', '')} {','.join(service.get('listen', []))}",
                     "", "", "", "", str(service.get("active", "-")),
                     "-" if total is None else str(total),
                     _rate(service, old_services.get(name), interval if before else 0),
                     str(service.get("errors", "-"))])
        for pool_name in [service.get("pool"), *service.get("routes", [])]:
            if pool_name in pools:
                shown.add(pool_name)
                rows.extend(_pool_rows(pool_name, pools[pool_name], old_pools.get(pool_name), interval))
    others = [name for name in pools if name not in shown]  # http route targets, unused pools
    if others:
        rows.append(["(other pools)", "", "", "", "", "", "", "", ""])
    for pool_name in others:
        rows.extend(_pool_rows(pool_name, pools[pool_name], old_pools.get(pool_name), interval))
    out.extend(_table(rows))

    routers = status.get("routers") or {}
    if routers:
        out.append("")
        rrows = [["VRRP ROUTER", "VRID", "INTERFACE", "STATE", "PRIORITY", "VIPS", "PEER"]]
        for name, router in routers.items():
            peer = router.get("peer") or {}
            state = str(router.get("state", "-")) + (" (fault)" if router.get("fault") else "")
            rrows.append([name, str(router.get("vrid", "-")), str(router.get("interface", "-")), state,
                          str(router.get("priority", "-")), ",".join(router.get("vips", [])) or "-",
                          f"{peer['address']} prio {peer['priority']}" if peer else "-"])
        out.extend(_table(rrows))
    return "\n".join(out) + "\n"


def _pool_rows(name: str, pool: dict[str, Any], before: dict[str, Any] | None, interval: float) -> list[list[str]]:
    sticky = pool.get("sticky")
    desc = f"  pool {name} ({pool.get('scheduler', '?')}"
    if sticky and sticky != "none":
        desc += f", sticky {sticky}"
    if pool.get("health_kind"):
        desc += f", check {pool['health_kind']}"
    rows = [[desc + ")", "", "", "", "", "", "", "", ""]]
    for row in _server_rows(pool, before, interval):
        row[0] = "    " + row[0]
        rows.append(row)
    return rows
