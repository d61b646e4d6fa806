"""The HTTP proxy end to end: an in-process node, real backend processes on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from fulcrum.config.load import load_dict
from fulcrum.node import Node
from fulcrum.proxy.loop import loop_factory
from tests.integration.test_http_support import BackendProcess, Client, running
from tests.support import free_port, wait_until

Scenario = Callable[[int, Node], Awaitable[None]]


@pytest.fixture(scope="module")
def backends() -> Iterator[dict[str, BackendProcess]]:
    with running("abc") as procs:
        yield procs


def config(servers: list[int], http: dict[str, Any] | None = None, pool: dict[str, Any] | None = None,
           extra_pools: dict[str, Any] | None = None, port: int | None = None) -> dict[str, Any]:
    p: dict[str, Any] = {"servers": [f"127.0.0.1:{s}" for s in servers], "health": {"kind": "none"},
                         "blacklist": "1s"}
    p.update(pool or {})
    return {
        "services": {"web": {"listen": [f"127.0.0.1:{port or free_port()}"], "pool": "p", "mode": "http",
                             "http": http or {}}},
        "pools": {"p": p, **(extra_pools or {})},
        "timeouts": {"connect": "2s"},
    }


def run(data: dict[str, Any], scenario: Scenario) -> None:
    async def main() -> None:
        node = Node(load_dict(data))
        await node.start()
        port = node.config.services["web"].listen[0].port
        try:
            async with asyncio.timeout(60):
                await scenario(port, node)
        finally:
            await node.stop(drain=0)

    with asyncio.Runner(loop_factory=loop_factory()) as runner:  # uvloop unless FULCRUM_LOOP=asyncio
        runner.run(main())


def test_keep_alive_round_robin_and_forwarded_headers(backends: dict[str, BackendProcess]) -> None:
    async def scenario(port: int, node: Node) -> None:
        c = await Client.connect(port)
        names = [(await c.get("/name")).body for _ in range(6)]
        assert sorted(names) == [b"a", b"a", b"b", b"b", b"c", b"c"]
        r = await c.get("/headers", "X-Forwarded-For: 198.51.100.9\r\nX-Forwarded-Proto: https\r\n"
                        "Connection: keep-alive, X-Secret\r\nX-Secret: 1\r\nTE: trailers\r\n", host="shop.example")
        head = r.body.lower()
        assert b"x-forwarded-for: 198.51.100.9, 127.0.0.1\r\n" in head
        assert b"x-forwarded-proto: http\r\n" in head and b"https" not in head
        assert b"x-forwarded-host: shop.example\r\n" in head
        assert b"host: shop.example\r\n" in head  # ProxyPreserveHost on by default
        assert b"x-secret" not in head and b"te:" not in head and b"connection: keep-alive" not in head
        assert not c.eof  # all on one client connection
        c.close()

    run(config([b.port for b in backends.values()]), scenario)


def test_pipelined_requests_answered_in_order(backends: dict[str, BackendProcess]) -> None:
    async def scenario(port: int, node: Node) -> None:
        c = await Client.connect(port)
        c.send(b"GET /slow?s=0.3 HTTP/1.1\r\nHost: t\r\n\r\n"
               b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
               b"GET /name HTTP/1.1\r\nHost: t\r\n\r\n"
               b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        got = await c.responses(4)
        assert [r.status for r in got] == [200] * 4
        assert got[1].body == b"hello" and got[3].body == b"abcde"
        assert got[0].header(b"x-backend") is not None
        c.close()

    run(config([backends["a"].port]), scenario)


def test_chunked_and_large_bodies_both_ways(backends: dict[str, BackendProcess]) -> None:
    async def scenario(port: int, node: Node) -> None:
        c = await Client.connect(port)
        r = await c.get("/chunked?n=50")
        assert r.body == b"a" * 50 and r.header(b"transfer-encoding") == b"chunked"
        big = await c.get("/big?n=5000000")
        assert len(big.body) == 5_000_000
        payload = bytes(range(256)) * 20000  # 5 MB up, streamed
        c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload)
        got = await c.responses(3, timeout=30)
        assert got[2].body == payload
        # a chunked upload in many chunks, answered with its length intact
        chunks = b"".join(b"%x\r\n%s\r\n" % (1000, b"z" * 1000) for _ in range(200)) + b"0\r\n\r\n"
        c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks)
        got = await c.responses(4, timeout=30)
        assert got[3].body == b"z" * 200_000
        c.close()

    run(config([backends["a"].port]), scenario)


def test_http10_client_and_read_until_close_response(backends: dict[str, BackendProcess]) -> None:
    async def scenario(port: int, node: Node) -> None:
        c = await Client.connect(port)
        c.send(b"GET /name HTTP/1.0\r\n\r\n")
        assert await c.closed()
        assert c.raw.startswith(b"HTTP/1.0 200 ") and c.raw.endswith(b"\r\n\r\na")
        c = await Client.connect(port)  # 1.1 client, server ends its body by closing: re-chunked
        r = await c.get("/close")
        assert r.body == b"until-close:a" and r.header(b"transfer-encoding") == b"chunked"
        assert (await c.get("/name")).body == b"a"  # the client connection lives on
        c.close()

    run(config([backends["a"].port]), scenario)


def test_head_204_304_and_100_continue(backends: dict[str, BackendProcess]) -> None:
    async def scenario(port: int, node: Node) -> None:
        c = await Client.connect(port)
        assert (await c.get("/status/204")).status == 204
        assert (await c.get("/status/304")).status == 304
        c.raw = b""
        c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        deadline = asyncio.get_running_loop().time() + 5
        while b"100 Continue" not in c.raw and asyncio.get_running_loop().time() < deadline:
            c.raw += await asyncio.wait_for(c.reader.read(65536), 5)
        assert c.raw.startswith(b"HTTP/1.1 100 Continue\r\n")
        c.send(b"body")
        rest = b""
        while not rest.endswith(b"body"):
            rest += await asyncio.wait_for(c.reader.read(65536), 5)
        assert b"HTTP/1.1 200 OK" in rest
        c.close()
        c = await Client.connect(port)
        c.send(b"HEAD /big?n=10 HTTP/1.1\r\nHost: t\r\n\r\nGET /name HTTP/1.1\r\nHost: t\r\n\r\n")
        raw = b""
        while not raw.endswith(b"\r\n\r\na"):
            raw += await asyncio.wait_for(c.reader.read(65536), 5)
        first, second = raw.split(b"\r\n\r\n", 1)
        assert b"Content-Length: 10" in first and second.startswith(b"HTTP/1.1 200")
        c.close()

    run(config([backends["a"].port]), scenario)


def test_websocket_upgrade_tunnels_after_101(backends: dict[str, BackendProcess]) -> None:
    async def scenario(port: int, node: Node) -> None:
        c = await Client.connect(port)
        c.send(b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        raw = b""
        while b"\r\n\r\n" not in raw:
            raw += await asyncio.wait_for(c.reader.read(65536), 5)
        assert raw.startswith(b"HTTP/1.1 101 ")
        c.send(b"\x81\x05hello raw frames")
        echoed = raw.split(b"\r\n\r\n", 1)[1]
        while len(echoed) < 18:
            echoed += await asyncio.wait_for(c.reader.read(65536), 5)
        assert echoed == b"\x81\x05hello raw frames"
        c.close()

    run(config([backends["a"].port]), scenario)


def test_location_rewritten_to_public_address(backends: dict[str, BackendProcess]) -> None:
    async def scenario(port: int, node: Node) -> None:
        c = await Client.connect(port)
        r = await c.get("/redirect", host="www.example")
        assert r.status == 302 and r.header(b"location") == b"http://www.example/next?from=a"
        c.close()

    run(config([backends["a"].port]), scenario)


def test_routes_by_host_and_path_prefix(backends: dict[str, BackendProcess]) -> None:
    async def scenario(port: int, node: Node) -> None:
        c = await Client.connect(port)
        assert (await c.get("/app/name")).body == b"b"
        assert (await c.get("/application")).body == b"a"  # prefixes end on segment boundaries
        assert (await c.get("/name", host="api.example:8080")).body == b"c"
        assert (await c.get("/app/x", host="API.example")).body == b"c"  # host rule wins
        assert (await c.get("/name")).body == b"a"
        c.close()

    data = config([backends["a"].port], http={"routes": [
        {"path": "/app", "pool": "app"}, {"host": "api.example", "pool": "api"}]},
        extra_pools={"app": {"servers": [f"127.0.0.1:{backends['b'].port}"], "health": {"kind": "none"}},
                     "api": {"servers": [f"127.0.0.1:{backends['c'].port}"], "health": {"kind": "none"}}})
    run(data, scenario)


def test_preserve_host_off_sends_server_address(backends: dict[str, BackendProcess]) -> None:
    async def scenario(port: int, node: Node) -> None:
        c = await Client.connect(port)
        r = await c.get("/headers", host="public.example")
        assert b"Host: 127.0.0.1:%d\r\n" % backends["a"].port in r.body
        c.close()

    run(config([backends["a"].port], http={"preserve_host": False, "forwarded": True}), scenario)


def test_error_statuses(backends: dict[str, BackendProcess]) -> None:
    async def scenario(port: int, node: Node) -> None:
        c = await Client.connect(port)
        r = await c.get("/garbage")
        assert r.status == 502 and await c.closed()
        c = await Client.connect(port)
        r = await c.get("/hugehead")  # bounded: the proxy gives up instead of growing
        assert r.status == 502
        c = await Client.connect(port)
        r = await c.get("/slow?s=5")
        assert r.status == 504
        c = await Client.connect(port)
        r = await c.get("/reset")  # idempotent: retried once, then 502
        assert r.status == 502
        # refused connects go elsewhere; when nothing is left: 503 with Retry-After
        node.pools["p"].backends[0].state = "disabled"
        c = await Client.connect(port)
        r = await c.get("/name")
        assert r.status == 503 and r.header(b"retry-after") == b"5"

    run(config([backends["a"].port], http={"response_timeout": "0.5s"}), scenario)


def test_connect_failure_goes_to_another_server(backends: dict[str, BackendProcess]) -> None:
    dead = free_port()

    async def scenario(port: int, node: Node) -> None:
        c = await Client.connect(port)
        names = [(await c.get("/name")).body for _ in range(4)]
        assert names == [b"a"] * 4
        c.close()

    run(config([dead, backends["a"].port], pool={"blacklist": "0s"}), scenario)


def test_proxy_protocol_sent_to_servers_on_private_connections(backends: dict[str, BackendProcess]) -> None:
    async def scenario(port: int, node: Node) -> None:
        one, two = await Client.connect(port), await Client.connect(port)
        lines = []
        for c in (one, two, one):
            body = (await c.get("/headers")).body
            line = [x for x in body.split(b"\r\n") if x.startswith(b"(proxy) ")]
            assert len(line) == 1
            lines.append(line[0])
        local = one.writer.get_extra_info("sockname")
        assert lines[0] == b"(proxy) PROXY TCP4 127.0.0.1 127.0.0.1 %d %d" % (local[1], port)
        assert lines[1] != lines[0] and lines[2] == lines[0]  # per client, kept alive per client
        one.close()
        two.close()

    run(config([backends["a"].port], pool={"proxy_protocol": "v1"}), scenario)


def test_proxy_protocol_accepted_from_trusted_balancers_only(backends: dict[str, BackendProcess]) -> None:
    async def scenario(port: int, node: Node) -> None:
        c = await Client.connect(port)
        c.send(b"PROXY TCP4 203.0.113.9 127.0.0.1 40000 443\r\n")
        r = await c.get("/headers")
        assert b"X-Forwarded-For: 203.0.113.9\r\n" in r.body
        c.close()
        v2 = (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c" + bytes([198, 51, 100, 7, 127, 0, 0, 1])
              + (40000).to_bytes(2, "big") + (80).to_bytes(2, "big"))
        c = await Client.connect(port)
        c.send(v2)
        assert b"X-Forwarded-For: 198.51.100.7\r\n" in (await c.get("/headers")).body
        c.close()
        c = await Client.connect(port)  # a trusted peer must send the header
        c.send(b"GET /name HTTP/1.1\r\nHost: t\r\n\r\n")
        assert await c.closed() and c.raw.startswith(b"HTTP/1.1 400 ")

    run(config([backends["a"].port], http={"accept_proxy_protocol": ["127.0.0.0/8"]}), scenario)


def test_proxy_header_from_an_untrusted_peer_is_rejected(backends: dict[str, BackendProcess]) -> None:
    async def scenario(port: int, node: Node) -> None:
        c = await Client.connect(port)
        c.send(b"PROXY TCP4 203.0.113.9 127.0.0.1 40000 443\r\nGET /name HTTP/1.1\r\nHost: t\r\n\r\n")
        assert await c.closed() and c.raw.startswith(b"HTTP/1.1 400 ")

    run(config([backends["a"].port], http={"accept_proxy_protocol": ["192.0.2.0/24"]}), scenario)


def test_slow_client_does_not_make_the_proxy_buffer_the_response(backends: dict[str, BackendProcess]) -> None:
    """Backpressure: a client that does not read stops the server side being read, so the
    proxy holds about one write buffer's worth, not the 64 MB response."""

    async def scenario(port: int, node: Node) -> None:
        c = await Client.connect(port)
        c.send(b"GET /big?n=64000000 HTTP/1.1\r\nHost: t\r\n\r\n")
        conns = node.contexts["web"].open_connections
        await wait_until(lambda: any(r.write_paused for r in conns), timeout=30)  # type: ignore[attr-defined]
        # The client goes on reading nothing for three response timeouts: not the server's delay.
        await asyncio.sleep(1.5)
        (conn,) = list(conns)
        buffered = conn.transport.get_write_buffer_size()  # type: ignore[attr-defined]
        assert buffered <= 2 * 1024 * 1024, buffered
        assert conn.write_paused  # type: ignore[attr-defined]
        got = 0
        async with asyncio.timeout(30):
            while got < 64_000_000:
                data = await c.reader.read(1 << 20)
                assert data
                got += len(data)
        assert got >= 64_000_000
        c.close()

    run(config([backends["a"].port], http={"response_timeout": "0.5s"}), scenario)


def test_http10_keep_alive_and_pipelined_head(backends: dict[str, BackendProcess]) -> None:
    async def scenario(port: int, node: Node) -> None:
        c = await Client.connect(port)
        c.send(b"GET /name HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        raw = b""
        while not raw.endswith(b"\r\n\r\na"):
            raw += await asyncio.wait_for(c.reader.read(65536), 5)
        assert raw.startswith(b"HTTP/1.0 200 ") and b"Connection: keep-alive\r\n" in raw
        c.send(b"HEAD /name HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /name HTTP/1.0\r\n\r\n")
        assert await c.closed()  # the second request did not ask to keep alive
        heads = c.raw.split(b"HTTP/1.0 ")[1:]
        assert len(heads) == 2 and heads[0].endswith(b"\r\n\r\n") and heads[1].endswith(b"\r\n\r\na")
        assert b"Connection: close\r\n" in heads[1]

    run(config([backends["a"].port]), scenario)


def test_lbset_tiers_and_hot_standby_per_request(backends: dict[str, BackendProcess]) -> None:
    async def scenario(port: int, node: Node) -> None:
        pool = node.pools["p"]
        c = await Client.connect(port)
        assert {(await c.get("/name")).body for _ in range(4)} == {b"a"}
        pool.find(f"127.0.0.1:{backends['a'].port}").state = "disabled"
        assert {(await c.get("/name")).body for _ in range(4)} == {b"b"}  # the next lbset
        pool.find(f"127.0.0.1:{backends['b'].port}").state = "disabled"
        assert {(await c.get("/name")).body for _ in range(4)} == {b"c"}  # hot standby last
        c.close()

    data = config([])
    data["pools"]["p"]["servers"] = [
        {"address": "127.0.0.1", "port": backends["a"].port},
        {"address": "127.0.0.1", "port": backends["b"].port, "lbset": 1},
        {"address": "127.0.0.1", "port": backends["c"].port, "backup": True}]
    run(data, scenario)


def test_reload_changes_routes_without_dropping_connections(backends: dict[str, BackendProcess]) -> None:
    data = config([backends["a"].port])
    data["pools"]["other"] = {"servers": [f"127.0.0.1:{backends['b'].port}"], "health": {"kind": "none"}}

    async def scenario(port: int, node: Node) -> None:
        old = await Client.connect(port)
        assert (await old.get("/app/name")).body == b"a"
        data["services"]["web"]["http"] = {"routes": [{"path": "/app", "pool": "other"}]}
        await node.reload(load_dict(data))
        new = await Client.connect(port)
        assert (await new.get("/app/name")).body == b"b"  # new connections: new routes
        assert (await old.get("/app/name")).body == b"a"  # the established one keeps its rules
        assert not old.eof
        old.close()
        new.close()

    run(data, scenario)


def test_ipv6_client_in_forwarded_headers(backends: dict[str, BackendProcess]) -> None:
    port = free_port()
    data = config([backends["a"].port], http={"forwarded": True})
    data["services"]["web"]["listen"] = [f"[::1]:{port}"]

    async def scenario(_: int, node: Node) -> None:
        c = await Client.connect(port, host="::1")
        body = (await c.get("/headers", host="[::1]")).body
        assert b"X-Forwarded-For: ::1\r\n" in body
        assert b'Forwarded: for="[::1]";proto=http;host="[::1]"\r\n' in body
        c.close()

    run(data, scenario)


def test_closed_connections_are_freed_without_the_garbage_collector(backends: dict[str, BackendProcess]) -> None:
    """Cycles (parser <-> protocol, exchange <-> connection, server connection <-> exchange)
    would leave every connection to the cyclic collector; closing must break them."""
    import gc

    from fulcrum.proxy.http.exchange import Exchange
    from fulcrum.proxy.http.server import HttpConnection
    from fulcrum.proxy.http.upstream import Upstream

    async def scenario(port: int, node: Node) -> None:
        gc.collect()
        gc.disable()
        try:
            for path in ("/name", "/close", "/garbage", "/chunked"):
                for _ in range(10):
                    c = await Client.connect(port)
                    await c.get(path, "Connection: close\r\n")
                    assert await c.closed()
                    c.close()
            await wait_until(lambda: not node.connections)

            def freed(kinds: tuple[type, ...]) -> bool:
                return not any(isinstance(o, kinds) for o in gc.get_objects())

            # once the transports have delivered connection_lost
            await wait_until(lambda: freed((HttpConnection, Exchange)), step=0.05,
                             what="every HttpConnection and Exchange freed, the collector off")
            for up in [o for o in gc.get_objects() if isinstance(o, Upstream) and not o.closed]:
                up.close()  # kept-alive server connections are meant to live; close them
            up = None  # the loop variable must not keep the last one alive
            await wait_until(lambda: freed((HttpConnection, Exchange, Upstream)), step=0.05,
                             what="every Upstream freed once closed, the collector off")
            alive = [type(o).__name__ for o in gc.get_objects()
                     if isinstance(o, HttpConnection | Exchange | Upstream)]
        finally:
            gc.enable()
        assert alive == []

    run(config([backends["a"].port]), scenario)


def test_slow_server_reading_an_upload_is_not_a_client_timeout(backends: dict[str, BackendProcess]) -> None:
    async def scenario(port: int, node: Node) -> None:
        c = await Client.connect(port)
        size = 32_000_000
        c.send(b"POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % size)
        chunk = b"u" * 1_000_000
        for _ in range(size // len(chunk)):
            c.send(chunk)
            await asyncio.wait_for(c.writer.drain(), 10)  # the proxy pushes back while the server waits
        r = (await c.responses(1, timeout=20))[0]
        assert r.status == 200 and r.body == b"%d" % size
        c.close()

    run(config([backends["a"].port], http={"body_timeout": "0.5s", "response_timeout": "5s"}), scenario)


def test_pipelined_request_waiting_its_turn_is_not_timed_out(backends: dict[str, BackendProcess]) -> None:
    async def scenario(port: int, node: Node) -> None:
        c = await Client.connect(port)
        c.send(b"GET /slow?s=1.5 HTTP/1.1\r\nHost: t\r\n\r\nPOST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nab")
        await asyncio.sleep(0.1)
        c.send(b"cd")  # the rest of the second request, while the first is still being answered
        got = await c.responses(2, timeout=10)
        assert [r.status for r in got] == [200, 200] and got[1].body == b"abcd"
        c.close()

    run(config([backends["a"].port], http={"body_timeout": "0.5s", "header_timeout": "0.5s"}), scenario)
