"""pen's control port: replies in pen's formats (over a real loopback socket: tests/integration/test_penctl_port.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from control_helpers import pen_node

from fulcrum.control.penctl import PenProcess, respond
from fulcrum.importers.pen import parse_pen_argv


def say(node: Any, line: str, process: PenProcess | None = None) -> str:
    return asyncio.run(respond(node, line + "\n", process))


def test_servers_in_pens_format() -> None:
    node = pen_node()
    node.pools["pen"].taken(node.pools["pen"].backends[0])
    assert say(node, "servers") == (
        "0 addr 127.0.0.1 port 9001 conn 1 max 10 hard 20 weight 3 prio 1 sx 0 rx 0\n"
        "1 addr ::1 port 9002 conn 0 max 0 hard 0 weight 1 prio 0 sx 0 rx 0\n")


def test_queries_print_values_as_pen_does() -> None:
    node = pen_node()
    assert [say(node, q) for q in ("clients_max", "conn_max", "timeout", "blacklist", "tracking")] == \
        ["2048\n", "500\n", "3\n", "30\n", "0\n"]
    assert say(node, "mode") == "no hash no roundrobin no stubborn no weight no prio\n"
    assert say(node, "control") == "127.0.0.1:8888\n" and say(node, "listen") == "0.0.0.0:8080\n"
    assert say(node, "idle_timeout") == "Idle timeout: 0 seconds\n"
    assert node.reloads == []


def test_setters_change_the_configuration_and_print_the_new_value() -> None:
    node = pen_node()
    assert say(node, "clients_max 100") == "100\n"
    assert say(node, "conn_max 6144") == "6144\n"
    assert say(node, "timeout 5") == "5\n"
    assert say(node, "blacklist 10") == "10\n"
    assert say(node, "tracking 60") == "60\n"
    config = node.config
    assert (config.pools["pen"].sticky.table_size, config.max_connections, config.timeouts.connect) == (100, 6144, 5)
    assert (config.pools["pen"].blacklist, config.pools["pen"].sticky.expiry) == (10, 60)
    assert node.pools["pen"].clients is not None and node.pools["pen"].clients.size == 100


def test_server_commands() -> None:
    node = pen_node()
    assert say(node, "server 1 weight 7 max 5 hard 9 prio 2") == ""
    assert say(node, "servers").splitlines()[1] == \
        "1 addr ::1 port 9002 conn 0 max 5 hard 9 weight 7 prio 2 sx 0 rx 0"
    say(node, "server 0 blacklist 5")
    assert node.pools["pen"].backends[0].blacklisted_until == node.clock + 5
    assert node.config.pools["pen"].servers[0].weight == 3  # blacklist is not configuration
    say(node, "server 2 address 127.0.0.1 port 9003")
    assert [s.key for s in node.config.pools["pen"].servers][-1] == "127.0.0.1:9003"
    assert say(node, "server 9 weight 1").startswith("error: server 9: there are 3 servers")


def test_mode_flags() -> None:
    node = pen_node()
    for line in ("hash", "roundrobin", "stubborn"):
        say(node, line)
    assert say(node, "mode") == "hash roundrobin stubborn no weight no prio\n"
    say(node, "weight")
    assert node.config.pools["pen"].scheduler == "weight"
    say(node, "no weight")
    say(node, "no roundrobin")
    assert say(node, "mode") == "no hash no roundrobin stubborn no weight no prio\n"
    assert say(node, "mode wlc") == "no hash no roundrobin stubborn no weight no prio scheduler wlc\n"


def test_exit_only_with_X() -> None:
    node = pen_node()
    assert say(node, "exit") == "Exit is not enabled; restart with -X flag\n"
    calls: list[str] = []
    process = PenProcess(exit_enabled=True, on_exit=lambda: calls.append("exit"))
    assert say(node, "exit", process) == "" and calls == ["exit"]


def test_refusals_and_unknown_commands() -> None:
    node = pen_node()
    assert say(node, "frobnicate") == "do_cmd: ignoring command starting with 'frobnicate'\n"
    assert "access lists" in say(node, "acl 1 deny 10.0.0.1")
    assert say(node, "weight heavy") == ""  # pen ignores extra words after a flag
    assert say(node, "clients_max -3").startswith("error: pool.clients_max: size '-3'")
    assert say(node, "server 0 weight 70000").startswith("error: pools.pen.servers[0].weight")
    assert node.config.pools["pen"].servers[0].weight == 3


def test_write_produces_a_file_fulcrum_pen_reads_back(tmp_path: Path) -> None:
    node = pen_node("-W -x 100 8080 127.0.0.1:9001:10:20:3:1 [::1]:9002")
    say(node, "server 1 weight 4")
    target = tmp_path / "pen.cfg"
    assert say(node, "write") == "write: no file (give one, or start with -F)\n"
    assert say(node, f"write {target}", PenProcess(config_file=str(tmp_path / "started-with.cfg"))) == ""
    assert parse_pen_argv(["-F", str(target), "8080"]).config == node.config
    say(node, "server 1 weight 5")
    assert say(node, "write", PenProcess(config_file=str(target))) == ""
    assert parse_pen_argv(["-F", str(target), "8080"]).config.pools["pen"].servers[1].weight == 5


def test_status_is_pens_html_page() -> None:
    page = say(pen_node(), "status")
    assert page.startswith("<html>") and "<h1>Pen status page</h1>" in page and "<td>::1</td>" in page


def test_file_errors_are_replies_not_crashes(tmp_path: Path) -> None:
    reply = say(pen_node(pen_dir=tmp_path), f"write {tmp_path}/missing-dir/pen.cfg")
    assert reply.startswith("error: ") and "No such file or directory" in reply


@pytest.mark.parametrize("target", ["/etc/fulcrum-test-owned", "../outside.cfg", "sub/../../outside.cfg",
                                    "escape/passwd", "link.cfg"])
def test_write_and_web_stats_stay_inside_pen_dir(tmp_path: Path, target: str) -> None:
    # issue 7 item 2: any local user reaches this port; it must not write outside control.pen_dir
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    (allowed / "escape").symlink_to(outside)  # a directory on the way leads out
    (allowed / "link.cfg").symlink_to(outside / "victim")  # the file itself leads out
    node = pen_node(pen_dir=allowed)
    reply = say(node, f"write {target}")
    assert reply.startswith("error: write: ") and ("outside" in reply or "'..'" in reply), reply
    reply = say(node, f"web_stats {target}")
    assert reply.startswith("error: web_stats: "), reply
    assert node.config.control.status_file is None and node.reloads == []
    assert list(outside.iterdir()) == [] and not Path("/etc/fulcrum-test-owned").exists()


def test_without_pen_dir_the_port_writes_no_file(tmp_path: Path) -> None:
    node = pen_node()
    assert say(node, f"write {tmp_path}/pen.cfg").startswith("error: write: this control port may not write files")
    assert say(node, f"web_stats {tmp_path}/s.html").startswith("error: web_stats: this control port may not write")
    assert list(tmp_path.iterdir()) == []


def test_inside_pen_dir_relative_and_absolute_names_work(tmp_path: Path) -> None:
    node = pen_node(pen_dir=tmp_path)
    assert say(node, "write pen.cfg") == "" and (tmp_path / "pen.cfg").exists()
    assert say(node, f"web_stats {tmp_path}/status.html") == f"{tmp_path}/status.html\n"
    assert say(node, "no web_stats") == "" and node.config.control.status_file is None


@pytest.mark.parametrize(("given", "bound"), [(8888, "127.0.0.1:8888"), ("8888", "127.0.0.1:8888"),
                                              (":8888", "127.0.0.1:8888"), ("0.0.0.0:8888", "0.0.0.0:8888")])
def test_a_bare_pen_port_in_a_configuration_binds_loopback(given: object, bound: str) -> None:
    from fulcrum.config.load import load_dict

    config = load_dict({"services": {"s": {"listen": [":8080"], "pool": "p"}},
                        "pools": {"p": {"servers": ["127.0.0.1:9001"]}}, "control": {"pen_port": given}})
    assert str(config.control.pen_port) == bound


def test_log_and_debug_cannot_be_changed_from_the_port(tmp_path: Path) -> None:
    node = pen_node(pen_dir=tmp_path)
    assert say(node, "log /etc/fulcrum-pen-log") == "log: set the log level and file when starting fulcrum; not changeable here\n"
    assert say(node, "debug 9") == "debug: set the log level and file when starting fulcrum; not changeable here\n0\n"
    assert not Path("/etc/fulcrum-pen-log").exists() and node.reloads == []
