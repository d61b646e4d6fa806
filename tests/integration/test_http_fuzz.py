"""Fuzzing the HTTP proxy (issue 7): its request parser alone, and the proxy as a whole.

Brief in CI; longer on demand: `FULCRUM_FUZZ_EXAMPLES=2000 pytest tests/integration/test_http_fuzz.py`.
Inputs are requests built from tricky fragments (methods, targets, versions, Host,
Content-Length and Transfer-Encoding variants, obs-fold, bare LF, chunk sizes...), pipelined,
with random bytes mixed in. Any input found to break a property goes to tests/corpus/.

Properties:
- parser: never an internal error (500) or an exception; the output is a sequence of
  well-formed responses; the same input fed in one piece or cut anywhere gives the same output
  (what a client can make of it does not depend on how TCP splits it).
- whole proxy: no request reaches the server that a strict reference parser (h11) does not
  also see as a request at that place (no smuggling), and the proxy still serves afterwards.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import h11
import httptools
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fulcrum.config.load import load_dict
from fulcrum.proxy.context import ConnectionCounter, ServiceContext
from fulcrum.proxy.http.core import connection
from fulcrum.proxy.http.core.connection import ClientCore
from fulcrum.proxy.http.core.states import EXCHANGE, move
from fulcrum.proxy.http.exchange import Exchange
from fulcrum.proxy.http.server import HttpConnection
from fulcrum.proxy.http.service import HttpService
from fulcrum.proxy.loop import loop_factory

EXAMPLES = int(os.environ.get("FULCRUM_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("FULCRUM_FUZZ_EXAMPLES"),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"

methods = st.sampled_from([b"GET", b"POST", b"PUT", b"HEAD", b"OPTIONS", b"DELETE", b"PATCH", b"CONNECT",
                           b"PRI", b"FOO", b"get", b"G ET", b"", b"BREW", b"M-SEARCH", b"abcGET"])
targets = st.sampled_from([b"/", b"/name", b"/echo", b"/a?b=c", b"*", b"http://h.example/x", b"http://u@h/",
                           b"//x", b"/\x01", b"/%00", b"/a b", b"/" + b"x" * 9000])
versions = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1 ", b"HTTP/0.9", b"http/1.1", b""])
fields = st.sampled_from([
    b"Host: t", b"Host: a@b", b"Host: a b", b"Host:", b"Host: t\r\nHost: u", b"Content-Length: 5",
    b"Content-Length: 0", b"Content-Length: 40", b"Content-Length: 5, 5", b"Content-Length: +5",
    b"Content-Length: 5\r\nContent-Length: 6", b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked, identity",
    b"Transfer-Encoding: xchunked", b"Transfer-Encoding : chunked", b"Transfer-Encoding:\tchunked",
    b"Transfer-Encoding: chunked\r\nContent-Length: 5", b"X-A: 1\r\n folded", b"X-B: a\x00b", b"X-C: a\rb",
    b"Connection: close", b"Connection: keep-alive", b"Connection: Upgrade\r\nUpgrade: websocket",
    b"Expect: 100-continue", b"X-Forwarded-For: 6.6.6.6", b": empty-name", b"X-" + b"h" * 70000,
])
bodies = st.sampled_from([b"", b"hello", b"abc", b"3 ; x = y\r\nabc\r\n0\r\nT: 1\r\n\r\n", b"3;x =\r\nabc\r\n", b"5\r\nhello\r\n0\r\n\r\n", b"0\r\n\r\n", b"zz\r\n", b"5 ;a=b\r\nhello\r\n0\r\n\r\n",
                          b"3\r\nabcdef\r\n0\r\n\r\n", b"fffffffffffffffff1\r\nx\r\n", b"0\r\n\r\n" + SMUGGLED,
                          SMUGGLED, b"5\r\nhello\n0\r\n\r\n"])
line_ends = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n"])


@st.composite
def request(draw: Any) -> bytes:
    end = draw(line_ends)
    head = draw(methods) + b" " + draw(targets) + b" " + draw(versions) + end
    head += b"".join(f + end for f in draw(st.lists(fields, max_size=4)))
    return head + end + draw(bodies)


@st.composite
def stream(draw: Any) -> bytes:
    """A few pipelined requests, sometimes with random bytes spliced in."""
    data = b"".join(draw(st.lists(request(), min_size=1, max_size=4)))
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(max_size=16)) + data[at:]
    return data


# -- the request parser alone -------------------------------------------------------------------


class FakeTransport:
    """What HttpConnection needs of a transport; honours pause_reading like a real one."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.paused = False
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written += data

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def close(self) -> None:
        self.closing = True

    abort = close

    def is_closing(self) -> bool:
        return self.closing

    def set_write_buffer_limits(self, high: int, low: int) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def can_write_eof(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name in ("peername", "sockname") else default


# `make compiled` (mypyc) builds ClientCore as a native class, which Python code cannot
# subclass; these tests run on the pure Python core, which is what the tests check.
needs_pure_core = pytest.mark.skipif(not connection.__file__.endswith(".py"),
                                     reason="the core is compiled (make compiled): not subclassable")


class AnsweredLocally(ClientCore):
    """The real client side's core; every request whose head is accepted is answered here
    with its method and target instead of going to a server."""

    __slots__ = ()

    def _dispatch(self, ex: Exchange, fresh: bool = False) -> None:
        body = ex.method + b" " + ex.target
        ex.state = move(EXCHANGE, ex.state, "dispatch")
        ex.status = 200
        self._send(ex, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        self._end(ex, "answer")


async def _feed(service: HttpService, pieces: list[bytes]) -> bytes:
    conn = HttpConnection(service)
    transport = FakeTransport()
    conn.connection_made(transport)
    conn.core = AnsweredLocally(service, 0.0, ("127.0.0.1", 40000))  # the same core, answering itself
    conn.core.io = conn
    backlog = b""
    for piece in pieces:
        backlog += piece
        for _ in range(3):  # callbacks scheduled by the connection (a declined upgrade's replay)
            await asyncio.sleep(0)
        if not transport.paused and not transport.closing and backlog:
            data, backlog = backlog, b""
            conn.data_received(data)
    while backlog and not transport.paused and not transport.closing:
        data, backlog = backlog, b""
        conn.data_received(data)
    conn.connection_lost(None)
    return bytes(transport.written)


def _responses(raw: bytes) -> list[int]:
    """Statuses of the responses in `raw`, which must parse as a sequence of responses."""
    statuses: list[int] = []

    class Collect:
        def on_headers_complete(self) -> None:
            statuses.append(parser.get_status_code())

    parser = httptools.HttpResponseParser(Collect())
    parser.feed_data(raw)
    return statuses


async def _service() -> HttpService:
    from fulcrum.balance.pool import PoolRuntime

    config = load_dict({"services": {"web": {"listen": ["127.0.0.1:1"], "mode": "http", "pool": "p"}},
                        "pools": {"p": {"servers": ["127.0.0.1:2"], "health": {"kind": "none"}}}})
    ctx = ServiceContext(name="web", config=config.services["web"], pool=PoolRuntime("p", config.pools["p"]),
                         timeouts=config.service_timeouts("web"), node_connections=ConnectionCounter(),
                         connections=ConnectionCounter())
    return HttpService(ctx)


@needs_pure_core
def test_a_request_answered_before_its_body_arrived_keeps_its_body_framing() -> None:
    """The answer can come before the body (here at once): the body is still read as body,
    never as the next request's start (which would make `abcGET` a method)."""

    async def main() -> list[bytes]:
        service = await _service()
        outputs = []
        for body in (b"Content-Length: 3\r\n\r\nabc", b"Transfer-Encoding: chunked\r\n\r\n3 ; x = y\r\nabc\r\n0\r\n\r\n"):
            data = b"POST /c HTTP/1.1\r\nHost: t\r\n" + body + b"GET /after HTTP/1.1\r\nHost: t\r\n\r\n"
            outputs += [await _feed(service, [data]), await _feed(service, [data[i:i + 1] for i in range(len(data))])]
        return outputs

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        for output in runner.run(main()):
            assert output.endswith(b"\r\n\r\nPOST /cHTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nGET /after"), output


@needs_pure_core
@FUZZ
@given(data=stream(), cuts=st.lists(st.integers(1, 400), max_size=6))
def test_fuzz_request_parser_never_fails_and_does_not_depend_on_how_reads_are_cut(
        data: bytes, cuts: list[int]) -> None:
    async def main() -> tuple[bytes, bytes]:
        service = await _service()
        whole = await _feed(service, [data])
        pieces, rest = [], data
        for cut in cuts:
            pieces.append(rest[:cut])
            rest = rest[cut:]
        split = await _feed(service, [*pieces, rest])
        return whole, split

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        whole, split = runner.run(main())
    statuses = _responses(whole)
    assert 500 not in statuses
    assert whole == split


# -- the proxy as a whole ---------------------------------------------------------------------


def _h11_request_targets(data: bytes) -> list[bytes]:
    """Request targets a strict reference parser reads from `data`, up to its first error."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    conn.receive_data(b"")
    targets = []
    try:
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Request):
                targets.append(bytes(event.target))
            elif isinstance(event, h11.EndOfMessage):
                conn.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
                conn.send(h11.EndOfMessage())
                conn.start_next_cycle()
            elif event in (h11.NEED_DATA, h11.PAUSED) or isinstance(event, h11.ConnectionClosed):
                break
    except (h11.RemoteProtocolError, h11.LocalProtocolError):
        pass
    return targets


def test_fuzz_proxy_forwards_nothing_a_strict_parser_would_not_see() -> None:
    from tests.integration.test_http_proxy import config, run
    from tests.integration.test_http_support import Client, running

    examples: list[bytes] = []

    @settings(max_examples=max(10, EXAMPLES // 3), deadline=None, database=None,
              derandomize=not os.environ.get("FULCRUM_FUZZ_EXAMPLES"))
    @given(data=stream())
    def collect(data: bytes) -> None:
        examples.append(data)

    collect()

    async def smuggled_seen() -> int:
        log = await Client.connect(backend.port)
        seen = (await log.get("/log")).body  # every request line the server has read so far
        log.close()
        return seen.count(b"GET /smuggled ")

    async def scenario(port: int, node: Any) -> None:
        before = await smuggled_seen()
        for data in examples:
            c = await Client.connect(port)
            c.send(data)
            c.writer.write_eof()
            await c.closed(timeout=15)
            c.close()
            after = await smuggled_seen()
            # the server may see fewer requests than h11 (fulcrum is stricter), never more
            assert after - before <= _h11_request_targets(data).count(b"/smuggled"), data
            before = after
        c = await Client.connect(port)
        assert (await c.get("/name")).status == 200  # and it still serves
        c.close()

    with running("a") as procs:
        backend = procs["a"]
        run(config([backend.port], http={"header_timeout": "2s", "body_timeout": "2s"}), scenario)
