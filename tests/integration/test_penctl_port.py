"""pen's control port over a real loopback socket: one command per connection, silent and
oversized clients dropped, and Debian's penctl as the client."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from fulcrum.control import penctl
from fulcrum.control.penctl import serve_penctl
from fulcrum.importers.pen import parse_pen_argv
from tests.unit.control.control_helpers import AsyncFakeNode, pen_node

IO_TIMEOUT = 10.0


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
