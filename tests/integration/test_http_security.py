"""Regression tests of issue 7's HTTP defects (smuggling, response mix-ups, resources), each
named after its defect, end to end through real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from fulcrum.node import Node
from tests.integration.test_http_proxy import config, run
from tests.integration.test_http_support import BackendProcess, Client, running


@pytest.fixture(scope="module")
def backend() -> Iterator[BackendProcess]:
    with running("a") as procs:
        yield procs["a"]


async def seen_by(backend: BackendProcess) -> bytes:
    c = await Client.connect(backend.port)
    body = (await c.get("/log")).body
    c.close()
    return body


# -- issue 7 item 1: smuggling through Upgrade ------------------------------------------------


def test_upgrade_smuggling_declined_upgrade_parses_what_follows_as_a_request(backend: BackendProcess) -> None:
    """Bytes after an Upgrade request's head wait for the server's 101; when the server declines
    (200), they are the next pipelined request, read through every check (RFC 9110 §7.8)."""

    async def scenario(port: int, node: Node) -> None:
        c = await Client.connect(port)
        c.send(b"GET /noupgrade HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
               b"GET /headers?smuggled HTTP/1.1\r\nHost: evil.example\r\nX-Forwarded-For: 6.6.6.6\r\n"
               b"X-Forwarded-Proto: https\r\n\r\n")
        got = await c.responses(2)
        assert [r.status for r in got] == [200, 200]
        assert got[0].body == b"declined"
        head = got[1].body
        # the proxy's own forwarding headers, not the client's spoofed ones
        assert b"X-Forwarded-For: 6.6.6.6, 127.0.0.1\r\n" in head
        assert b"X-Forwarded-Proto: http\r\n" in head and b"https" not in head
        c.close()

    run(config([backend.port]), scenario)


def test_upgrade_smuggling_bad_request_after_declined_upgrade_is_rejected(backend: BackendProcess) -> None:
    """What follows a declined upgrade meets the same checks as any request: a smuggling attempt
    is a 400 and never reaches the server."""

    async def scenario(port: int, node: Node) -> None:
        c = await Client.connect(port)
        c.send(b"GET /noupgrade HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
               b"POST /smuggled HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"0\r\n\r\n")
        assert await c.closed()
        answers = c.raw.split(b"HTTP/1.1 ")[1:]
        assert [a[:3] for a in answers] == [b"200", b"400"]
        assert b"/smuggled" not in await seen_by(backend)

    run(config([backend.port]), scenario)


def test_upgrade_bytes_after_the_head_reach_the_server_after_its_101(backend: BackendProcess) -> None:
    async def scenario(port: int, node: Node) -> None:
        c = await Client.connect(port)
        c.send(b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nearly frame")
        raw = b""
        while not raw.endswith(b"early frame"):
            raw += await asyncio.wait_for(c.reader.read(65536), 5)
        assert raw.startswith(b"HTTP/1.1 101 ")
        c.close()

    run(config([backend.port]), scenario)
