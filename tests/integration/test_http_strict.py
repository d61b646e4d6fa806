"""Strict parsing end to end (issue 3 §5): every input of tests/corpus/http_rejected.toml is
answered with its status and the connection closed; no server ever sees a smuggled request;
the slowloris, body and keep-alive timeouts."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fulcrum.node import Node
from tests.integration.test_http_proxy import config, run
from tests.integration.test_http_support import BackendProcess, Client, running

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "http_rejected.toml"
CASES: list[dict[str, Any]] = tomllib.loads(CORPUS.read_text())["case"]


def raw_bytes(case: dict[str, Any]) -> bytes:
    raw: bytes = case["raw"].encode("latin-1")
    if "long_target" in case:
        raw = raw.replace(b"/LONG", b"/" + b"a" * case["long_target"])
    if "many_headers" in case:
        raw = raw.replace(b"MANY\r\n", b"".join(b"X-%d: v\r\n" % i for i in range(case["many_headers"])))
    if "huge_value" in case:
        raw = raw.replace(b"HUGE", b"h" * case["huge_value"])
    return raw


@pytest.fixture(scope="module")
def backend() -> Iterator[BackendProcess]:
    with running("a") as procs:
        yield procs["a"]


async def seen_by(backend: BackendProcess) -> bytes:
    c = await Client.connect(backend.port)
    body = (await c.get("/log")).body
    c.close()
    return body


def test_every_corpus_input_is_rejected_and_closed(backend: BackendProcess) -> None:
    assert len(CASES) >= 30

    async def scenario(port: int, node: Node) -> None:
        failures = []
        for case in CASES:
            c = await Client.connect(port)
            c.send(raw_bytes(case))
            closed = await c.closed()
            status_line = c.raw.split(b"\r\n", 1)[0]
            expected = b"HTTP/1.1 %d " % case["status"]
            if not (closed and status_line.startswith(expected) and c.raw.count(b"HTTP/1.1 ") == 1):
                failures.append((case["name"], status_line, closed))
            c.close()
        assert failures == []
        # a well-formed request still works, and no server ever saw a smuggled request
        c = await Client.connect(port)
        assert (await c.get("/name")).status == 200
        c.close()
        assert b"/smuggled" not in await seen_by(backend)

    run(config([backend.port]), scenario)


def test_corpus_inputs_split_byte_by_byte_are_rejected_too(backend: BackendProcess) -> None:
    async def scenario(port: int, node: Node) -> None:
        for case in CASES[:12]:
            c = await Client.connect(port)
            for byte in raw_bytes(case):
                c.send(bytes([byte]))
                await c.writer.drain()
                if c.writer.is_closing():
                    break
            assert await c.closed(), case["name"]
            assert c.raw.startswith(b"HTTP/1.1 %d " % case["status"]), case["name"]
            c.close()
        assert b"/smuggled" not in await seen_by(backend)

    run(config([backend.port]), scenario)


def test_good_request_then_bad_one_on_the_same_connection(backend: BackendProcess) -> None:
    async def scenario(port: int, node: Node) -> None:
        c = await Client.connect(port)
        c.send(b"GET /slow?s=0.2 HTTP/1.1\r\nHost: t\r\n\r\n"
               b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc"
               b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n")
        assert await c.closed()
        answers = c.raw.split(b"HTTP/1.1 ")[1:]
        assert [a[:3] for a in answers] == [b"200", b"400"]  # in order, then closed
        assert b"/smuggled" not in await seen_by(backend)

    run(config([backend.port]), scenario)


def test_invalid_chunk_mid_body_aborts_the_server_side(backend: BackendProcess) -> None:
    """The head already went to the server: its connection is dropped, never reused, so the
    server cannot read our next request as the rest of this body."""

    async def scenario(port: int, node: Node) -> None:
        c = await Client.connect(port)
        c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await asyncio.sleep(0.2)
        c.send(b"zz\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n")
        assert await c.closed() and c.raw.startswith(b"HTTP/1.1 400 ")
        for _ in range(3):
            c = await Client.connect(port)
            assert (await c.get("/name")).body == b"a"
            c.close()
        assert b"/smuggled" not in await seen_by(backend)

    run(config([backend.port]), scenario)


def test_slowloris_head_gets_408(backend: BackendProcess) -> None:
    async def scenario(port: int, node: Node) -> None:
        c = await Client.connect(port)
        for piece in (b"GET /name HTTP/1.1\r\n", b"Host: t\r\n", b"X-A: 1\r\n", b"X-B: 2\r\n"):
            c.send(piece)  # each piece well inside any idle timeout, the whole head too slow
            await asyncio.sleep(0.2)
        assert await c.closed()
        assert c.raw.startswith(b"HTTP/1.1 408 ")

    run(config([backend.port], http={"header_timeout": "0.5s"}), scenario)


def test_idle_body_gets_408_and_idle_keepalive_is_closed(backend: BackendProcess) -> None:
    async def scenario(port: int, node: Node) -> None:
        c = await Client.connect(port)
        c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        assert await c.closed()
        assert c.raw.startswith(b"HTTP/1.1 408 ")
        c = await Client.connect(port)
        assert (await c.get("/name")).status == 200
        assert await c.closed()  # idle keep-alive connection closed, without a response
        assert c.raw.count(b"HTTP/1.1 ") == 1

    run(config([backend.port], http={"body_timeout": "0.3s", "keepalive_timeout": "0.3s"}), scenario)
