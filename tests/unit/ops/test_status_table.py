"""`fulcrum ctl status` as a table: service -> pool -> server, VRRP routers, rates from two samples."""

from __future__ import annotations

import copy

from fulcrum.control.status_table import duration, render

STATUS = {
    "node": "lb0", "version": "0.1.0", "pid": 42, "uptime": 7500.0, "config_version": 7, "workers": 1,
    "connections": 3, "max_connections": 10000,
    "services": {"web": {"listen": ["0.0.0.0:80"], "pool": "app", "mode": "http", "active": 3,
                         "requests": 1000, "connections": 0, "errors": 2}},
    "pools": {
        "app": {"scheduler": "wrr", "sticky": "insert", "health_kind": "http", "servers": [
            {"key": "10.0.0.11:8080", "status": "up", "weight": 2, "active": 2, "requests": 600,
             "connections": 0, "errors": 0,
             "check": {"kind": "http", "ok": True, "reason": "200 OK", "ago": 1.2, "since_change": 3700}},
            {"key": "10.0.0.12:8080", "status": "down", "weight": 1, "active": 0, "requests": 400,
             "connections": 0, "errors": 2, "backup": True,
             "check": {"kind": "http", "ok": False, "reason": "connection refused", "ago": 0.5,
                       "since_change": 65}}]},
        "static": {"scheduler": "rr", "sticky": "none", "servers": []},
    },
    "routers": {"vi_1": {"state": "master", "priority": 150, "vrid": 51, "interface": "eth0",
                         "vips": ["198.18.0.100/24"], "peer": {"address": "198.18.0.2", "priority": 100}}},
}


def test_durations() -> None:
    assert [duration(x) for x in (3, 200, 7500, 300000, None)] == ["3s", "3m20s", "2h05m", "3d11h", "-"]


def test_table_reads_service_pool_server_and_routers() -> None:
    later = copy.deepcopy(STATUS)
    later["services"]["web"]["requests"] = 1020
    later["pools"]["app"]["servers"][0]["requests"] = 620
    text = render(later, STATUS, 2.0)
    lines = text.splitlines()
    assert lines[0] == ("fulcrum 0.1.0, on lb0, pid 42, up 2h05m, config version 7, 1 worker(s), "
                        "connections 3/10000")
    header = next(line for line in lines if line.startswith("SERVICE"))
    for column in ("STATE", "WEIGHT", "HEALTH", "SINCE", "ACTIVE", "TOTAL", "RATE/s", "ERRORS"):
        assert column in header
    web = next(line for line in lines if line.startswith("web "))
    assert web.split()[-4:] == ["3", "1020", "10.0", "2"]  # active, total, rate over 2s, errors
    up = next(line for line in lines if "10.0.0.11:8080" in line).split()
    assert up[:5] == ["->", "10.0.0.11:8080", "up", "2", "http"] and "1h01m" in up and up[-4:] == ["2", "620", "10.0", "0"]
    down = next(line for line in lines if "10.0.0.12:8080" in line)
    assert "(backup)" in down and "fail (connection refused)" in down and "1m05s" in down
    assert any("pool app (wrr, sticky insert, check http)" in line for line in lines)
    assert any(line.startswith("(other pools)") for line in lines) and any("pool static" in line for line in lines)
    router = next(line for line in lines if line.startswith("vi_1")).split()
    assert router[:5] == ["vi_1", "51", "eth0", "master", "150"] and "198.18.0.2" in router


def test_missing_fields_and_no_second_sample_show_dashes() -> None:
    text = render({"services": {"s": {"listen": ["127.0.0.1:1"], "pool": "p"}},
                   "pools": {"p": {"servers": [{"key": "127.0.0.1:9", "status": "up"}]}}})
    row = next(line for line in text.splitlines() if "127.0.0.1:9" in line)
    assert row.split()[-3:] == ["-", "-", "-"]
