"""status(node) and pen's HTML status page."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from control_helpers import FakeNode, make_config

from fulcrum.control.status import render_pen_html, status, write_status_file


def test_status_reports_live_server_state() -> None:
    node = FakeNode(make_config(sticky={"mode": "source", "table_size": 64}))
    pool = node.pools["web"]
    first, second, third = pool.backends
    pool.taken(first)
    pool.released(first, traffic=1500)
    pool.taken(first)
    second.blacklisted_until = node.clock + 4
    pool.set_healthy(third, False)
    pool.pick(node.now(), client="192.0.2.7")
    node.connections = 1
    info = status(node)
    assert info["connections"] == 1 and info["max_connections"] == 10000
    web_service = info["services"]["web"]
    assert {k: web_service[k] for k in ("listen", "pool", "mode", "topology", "active", "requests")} == {
        "listen": ["127.0.0.1:8080"], "pool": "web", "mode": "tcp", "topology": "proxy",
        "active": 0, "requests": 0}
    web = info["pools"]["web"]
    assert (web["scheduler"], web["sticky"], web["clients"], web["clients_max"]) == ("rr", "source", 1, 64)
    rows = [(s["index"], s["status"], s["health"], s["active"], s["total"], s["traffic"]) for s in web["servers"]]
    assert rows == [(0, "up", "up", 1, 2, 1500), (1, "blacklisted", "up", 0, 0, 0), (2, "down", "down", 0, 0, 0)]
    assert web["servers"][1]["blacklisted_for"] == 4
    assert web["emergency"] is None


def test_status_words_for_admin_states_and_limits() -> None:
    node = FakeNode(make_config(["127.0.0.1:9001:1", "127.0.0.1:9002", "127.0.0.1:9003"]))
    pool = node.pools["web"]
    pool.taken(pool.backends[0])
    pool.backends[1].state = "drain"
    pool.backends[2].state = "disabled"
    assert [s["status"] for s in status(node)["pools"]["web"]["servers"]] == ["full", "drain", "disabled"]


def test_pen_html_page_has_pens_sections() -> None:
    node = FakeNode(make_config(sticky={"mode": "source"}))
    node.pools["web"].pick(node.now(), client="192.0.2.7")
    node.clock += 12
    page = render_pen_html(node, wall=datetime(2026, 11, 26, 15, 0, 0))
    assert "<title>Pen status page</title>" in page
    assert "Time 2026-11-26 15:00:00, 3 servers, 0 current<p>" in page
    assert "<td>::1</td>\n<td>up</td>\n<td>9003</td>" in page
    assert "Max number of clients: 2048<p>" in page
    assert "<td>192.0.2.7</td>\n<td>12</td>\n<td>0</td>" in page  # age 12 s, last server 0
    assert "Number of connections: 10000 max, 0 used<p>" in page


def test_status_file_is_replaced_atomically(tmp_path: Path) -> None:
    node = FakeNode(make_config())
    target = tmp_path / "pen.html"
    target.write_text("old")
    write_status_file(node, target)
    assert target.read_text().startswith("<html>")
    assert [p.name for p in tmp_path.iterdir()] == ["pen.html"]


def test_status_totals_come_from_the_observer_and_checks_from_the_monitor() -> None:
    from fulcrum.observe import Observation, Observer

    node = FakeNode(make_config())
    node.observer = Observer()
    key = node.pools["web"].backends[0].key
    node.observer.record(Observation("http", "web", pool="web", server=key, status=503,
                                     bytes_in=100, bytes_out=2000))
    node.observer.record(Observation("http", "web", pool="web", server=key, status=200, bytes_out=10))

    class Monitor:
        def status(self) -> dict[str, dict[str, dict[str, object]]]:
            return {"web": {key: {"kind": "tcp", "last_ok": False, "last_reason": "connect refused",
                                  "last_check": node.clock - 1, "last_change": node.clock - 30,
                                  "last_duration": 0.002, "counter": 0, "counter_max": 4,
                                  "rise": 2, "fall": 3}}}

    node.health = Monitor()
    info = status(node)
    service = info["services"]["web"]
    assert (service["requests"], service["bytes_in"], service["bytes_out"]) == (2, 100, 2010)
    assert service["statuses"]["5xx"] == 1 and service["statuses"]["2xx"] == 1
    first = info["pools"]["web"]["servers"][0]
    assert first["requests"] == 2 and first["statuses"]["5xx"] == 1
    assert first["check"]["reason"] == "connect refused" and first["check"]["ok"] is False
    assert first["check"]["since_change"] == 30 and first["check"]["ago"] == 1
    assert info["pools"]["web"]["servers"][1]["requests"] == 0
    assert info["version"] and info["node"] and info["routers"] == {}
