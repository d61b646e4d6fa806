"""pen's control port: replies in pen's formats, over a real loopback socket too."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest
from control_helpers import AsyncFakeNode, FakeNode

from fulcrum.control import penctl
from fulcrum.control.penctl import PenProcess, respond, serve_penctl
from fulcrum.importers.pen import parse_pen_argv

IO_TIMEOUT = 10.0


def pen_node(line: str = "-C 8888 8080 127.0.0.1:9001:10:20:3:1 [::1]:9002", pen_dir: Path | None = None) -> FakeNode:
    config = parse_pen_argv(line.split()).config
    config.control.pen_dir = str(pen_dir) if pen_dir else None
    return FakeNode(config)


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


async def _ask(port: int, line: bytes) -> bytes:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), IO_TIMEOUT)
    writer.write(line)
    if not line.endswith(b"\n"):
        writer.write_eof()
    await writer.drain()
    reply = await asyncio.wait_for(reader.read(), IO_TIMEOUT)  # the server closes after one reply
    writer.close()
    return reply


def test_over_loopback_one_command_per_connection() -> None:
    node = AsyncFakeNode(parse_pen_argv("8080 127.0.0.1:9001 127.0.0.1:9002".split()).config)

    async def scenario() -> list[bytes]:
        server = await serve_penctl(node, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            return [await _ask(port, b"server 1 weight 9\n"), await _ask(port, b"servers\n"),
                    await _ask(port, b"clients_max 64")]  # no newline: the end of the stream ends the line
        finally:
            server.close()
            await server.wait_closed()

    set_weight, servers, clients = asyncio.run(scenario())
    assert set_weight == b""
    assert servers.decode().splitlines()[1].startswith("1 addr 127.0.0.1 port 9002 conn 0 max 0 hard 0 weight 9")
    assert clients == b"64\n" and node.config.pools["pen"].sticky.table_size == 64


def test_silent_and_oversized_clients_are_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(penctl, "READ_TIMEOUT", 0.2)
    node = pen_node()

    async def scenario() -> tuple[bytes, bytes]:
        server = await serve_penctl(node, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            silent = await asyncio.wait_for(reader.read(), IO_TIMEOUT)  # closed by the read timeout
            writer.close()
            huge = await _ask(port, b"server 0 weight " + b"9" * 10000 + b"\n")
            return silent, huge
        finally:
            server.close()
            await server.wait_closed()

    assert asyncio.run(scenario()) == (b"", b"")
    assert node.reloads == []


@pytest.mark.skipif(shutil.which("penctl") is None, reason="Debian's penctl is not installed")
def test_debians_penctl_talks_to_fulcrum() -> None:
    node = pen_node()

    async def scenario() -> list[str]:
        server = await serve_penctl(node, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        out = []
        try:
            for command in (["server", "0", "weight", "6"], ["servers"], ["mode"]):
                proc = await asyncio.create_subprocess_exec(
                    "penctl", f"127.0.0.1:{port}", *command, stdout=asyncio.subprocess.PIPE)
                stdout, _ = await asyncio.wait_for(proc.communicate(), IO_TIMEOUT)
                out.append(stdout.decode())
        finally:
            server.close()
            await server.wait_closed()
        return out

    _, servers, mode = asyncio.run(scenario())
    assert servers.splitlines()[0] == "0 addr 127.0.0.1 port 9001 conn 0 max 10 hard 20 weight 6 prio 1 sx 0 rx 0"
    assert mode == "no hash no roundrobin no stubborn no weight no prio\n"


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
