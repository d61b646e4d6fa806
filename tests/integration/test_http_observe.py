"""Every finished HTTP request produces exactly one Observation (observe.py), with what access
logs, metrics and the status table need; bytraffic sees each request's bytes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from fulcrum.node import Node
from fulcrum.observe import CLIENT_ABORT, NO_SERVER, REJECTED, SERVER_ABORT, Observation
from tests.integration.test_http_proxy import config, run
from tests.integration.test_http_support import BackendProcess, Client, running
from tests.support import free_port


@pytest.fixture(scope="module")
def backends() -> Iterator[dict[str, BackendProcess]]:
    with running("ab") as procs:
        yield procs


async def records(seen: list[Observation], count: int) -> list[Observation]:
    """The first `count` records, once there (a request is recorded as it is released)."""
    async with asyncio.timeout(10):
        while len(seen) < count:
            await asyncio.sleep(0.01)
    return seen[:count]


def test_each_request_is_one_observation_with_its_fields(backends: dict[str, BackendProcess]) -> None:
    a = backends["a"]

    async def scenario(port: int, node: Node) -> None:
        seen: list[Observation] = []
        node.observer.sinks.append(seen.append)
        c = await Client.connect(port)
        local_port = c.writer.get_extra_info("sockname")[1]
        r = await c.get("/app/name?x=1", "User-Agent: probe/1.0\r\nReferer: http://ref.example/\r\n")
        assert r.status == 200
        first = c.raw
        await c.get("/name")  # the same server connection, reused
        (one, two) = await records(seen, 2)
        assert (one.kind, one.service, one.client, one.client_port) == ("http", "web", "127.0.0.1", local_port)
        assert (one.pool, one.server, one.route) == ("p", f"127.0.0.1:{a.port}", "/app")
        assert (one.method, one.target, one.version, one.status) == ("GET", "/app/name?x=1", "1.1", 200)
        assert (one.user_agent, one.referer) == ("probe/1.0", "http://ref.example/")
        assert one.bytes_out == len(first)  # the whole response as the client received it
        assert one.bytes_in == len(b"GET /app/name?x=1 HTTP/1.1\r\nHost: test\r\nUser-Agent: probe/1.0\r\n"
                                   b"Referer: http://ref.example/\r\n\r\n")
        assert one.connect is not None and two.connect is None  # fresh, then reused
        for obs in (one, two):
            assert obs.wait_request is not None and obs.wait_response is not None
            assert obs.total >= obs.wait_response >= 0 and obs.retries == 0 and obs.termination == ""
        assert two.route is None and two.target == "/name"
        totals = node.observer.service_totals("web")
        assert totals.requests == 2 and totals.statuses[1] == 2
        assert node.observer.server_totals("p", f"127.0.0.1:{a.port}").requests == 2
        c.close()

    run(config([a.port], http={"routes": [{"path": "/app", "pool": "p"}]}), scenario)


def test_failures_are_recorded_once_each_with_their_termination(backends: dict[str, BackendProcess]) -> None:
    async def scenario(port: int, node: Node) -> None:
        seen: list[Observation] = []
        node.observer.sinks.append(seen.append)
        c = await Client.connect(port)
        c.send(b"GET /name HTTP/1.1\r\nHost: t\r\n\r\nGET /name HTTP/1.1\r\nHost: t\r\n\r\n"
               b"GET /name HTTP/1.1\r\nHost: t\r\n\r\n")
        assert len(await c.responses(3)) == 3
        r = await c.get("/reset")  # retried once (idempotent), then 502
        assert r.status == 502
        c = await Client.connect(port)
        c.send(b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        assert await c.closed()
        c = await Client.connect(port)
        c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc")
        await asyncio.sleep(0.1)
        c.writer.write_eof()
        assert await c.closed()
        got = await records(seen, 6)
        assert [(o.status, o.termination) for o in got] == [
            (200, ""), (200, ""), (200, ""), (502, SERVER_ABORT), (400, REJECTED), (0, CLIENT_ABORT)]
        assert got[3].retries == 1 and got[5].bytes_in > 3
        node.pools["p"].backends[0].state = "disabled"
        c = await Client.connect(port)
        assert (await c.get("/name")).status == 503
        (last,) = (await records(seen, 7))[6:]
        assert (last.status, last.termination, last.server) == (503, NO_SERVER, None)
        await asyncio.sleep(0.2)
        assert len(seen) == 7  # exactly one record per request
        c.close()

    run(config([backends["a"].port]), scenario)


def test_bytraffic_counts_http_bytes_per_request(backends: dict[str, BackendProcess]) -> None:
    """mod_lbmethod_bytraffic: after a large response from one server, the next requests go to
    the other (fewest bytes per weight)."""
    a, b = backends["a"], backends["b"]

    async def scenario(port: int, node: Node) -> None:
        c = await Client.connect(port)
        big = await c.get("/big?n=300000")
        heavy = big.header(b"x-backend")
        names = [(await c.get("/name")).body for _ in range(3)]
        assert heavy is not None and set(names) == {b"ab".replace(heavy, b"")}
        traffic = {backend.key: backend.traffic for backend in node.pools["p"].backends}
        assert traffic[f"127.0.0.1:{(a if heavy == b'a' else b).port}"] > 300000
        c.close()

    run(config([a.port, b.port], pool={"scheduler": "bytraffic"}), scenario)


def test_requests_refused_before_they_begin_are_recorded(backends: dict[str, BackendProcess]) -> None:
    async def scenario(port: int, node: Node) -> None:
        seen: list[Observation] = []
        node.observer.sinks.append(seen.append)
        c = await Client.connect(port)  # a trusted peer that sends no PROXY header
        c.send(b"GET /name HTTP/1.1\r\nHost: t\r\n\r\n")
        assert await c.closed()
        (obs,) = await records(seen, 1)
        assert (obs.status, obs.termination, obs.method) == (400, REJECTED, None)

    run(config([backends["a"].port, free_port()], http={"accept_proxy_protocol": ["127.0.0.1"]}), scenario)
