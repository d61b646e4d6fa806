"""The same command line given to Debian's pen and to fulcrum: both control ports must
describe the same configuration (servers, mode, limits, timers).

pen runs in the foreground on loopback with a control port; its replies are compared
with fulcrum's replies for the configuration `parse_pen_argv` built from the same argv."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
from typing import Any

import pytest

from fulcrum.control.penctl import respond
from fulcrum.importers.pen import parse_pen_argv
from tests.support import free_port, wait_for

pytestmark = pytest.mark.skipif(shutil.which("pen") is None, reason="Debian's pen is not installed")

QUERIES = ("servers", "mode", "clients_max", "conn_max", "timeout", "blacklist", "tracking")


def ask_pen(port: int, command: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def pen_replies(argv: list[str]) -> dict[str, str]:
    control = free_port()
    run_as = ["-u", "root"] if os.geteuid() == 0 else []  # pen refuses -C as root without -u
    proc = subprocess.Popen(["pen", "-f", *run_as, "-C", f"127.0.0.1:{control}", *argv],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def answers() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"pen exited {proc.returncode}")
            try:
                ask_pen(control, "pid")
                return True
            except OSError:
                return False

        wait_for(answers, interval=0.05, what="pen's control port answering")
        return {q: ask_pen(control, q) for q in QUERIES}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class StaticNode:
    def __init__(self, argv: list[str]):
        from fulcrum.balance.pool import PoolRuntime

        self.config = parse_pen_argv(argv).config
        self.pools = {name: PoolRuntime(name, pool) for name, pool in self.config.pools.items()}
        self.connections = 0

    def now(self) -> float:
        return 0.0

    def reload(self, config: Any) -> None:
        raise AssertionError("queries must not reload")


def fulcrum_replies(argv: list[str]) -> dict[str, str]:
    node = StaticNode(argv)
    return {q: asyncio.run(respond(node, q + "\n")) for q in QUERIES}


def without_weights(servers: str) -> str:
    # pen shows weight 0 for servers written without one; fulcrum's default weight is 1.
    return "\n".join(line.split(" weight ")[0] + " prio " + line.split(" prio ")[1]
                     for line in servers.splitlines())


@pytest.mark.parametrize("line", [
    "-x 6144 -c 262144 -h -H LISTEN 127.0.0.1:9001 127.0.0.1:9002",  # the talk's, on loopback
    "-dr -x100 -c50 -b 5 -T60 -t 7 LISTEN 127.0.0.1:9001:10:20:3:1 [::1]:9002",
    "-sx64 LISTEN 127.0.0.1:9001:5 [::1]:9002:0:7 127.0.0.3",  # pen resolves names at start, fulcrum at connect
    "LISTEN 127.0.0.1:9001 -r -s 127.0.0.1:9002",  # options after the positionals
])
def test_pen_and_fulcrum_agree(line: str) -> None:
    argv = line.replace("LISTEN", f"127.0.0.1:{free_port()}").split()
    pen, ours = pen_replies(argv), fulcrum_replies(argv)
    assert without_weights(ours.pop("servers")) == without_weights(pen.pop("servers"))
    assert ours == pen


def test_weights_agree_in_weight_mode() -> None:
    argv = f"-W 127.0.0.1:{free_port()} 127.0.0.1:9001:0:0:5 127.0.0.1:9002:0:0:2:4".split()
    assert fulcrum_replies(argv) == pen_replies(argv)


def test_a_config_file_is_read_as_pen_reads_it(tmp_path: Any) -> None:
    cfg = tmp_path / "pen.cfg"
    cfg.write_text("# settings override options; argv's server 0 replaces the file's\n"
                   "server 0 address 127.0.0.5 port 7000 max 3 weight 9\n"
                   "server 1 address 127.0.0.6 port 7001 max 4 hard 8\n"
                   "tracking 44\nblacklist 12\nroundrobin\nstubborn\nno tcp_nodelay\n")
    argv = f"-T 10 -b 20 -F {cfg} 127.0.0.1:{free_port()} 127.0.0.1:9001".split()
    pen, ours = pen_replies(argv), fulcrum_replies(argv)
    assert without_weights(ours.pop("servers")) == without_weights(pen.pop("servers"))
    assert ours == pen
