"""Sticky sessions end to end: mod_proxy_balancer routes and fulcrum's signed insert cookie,
including two separate fulcrum processes agreeing on where a cookie points."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from fulcrum.node import Node
from tests.integration.test_http_proxy import config, run
from tests.integration.test_http_support import BackendProcess, Client, running
from tests.support import FulcrumProcess, free_port


@pytest.fixture(scope="module")
def backends() -> Iterator[dict[str, BackendProcess]]:
    with running("abc", {n: f"r{n}" for n in "abc"}) as procs:
        yield procs


def routed(backends: dict[str, BackendProcess], sticky: dict[str, Any]) -> dict[str, Any]:
    data = config([b.port for b in backends.values()], pool={"sticky": sticky})
    data["pools"]["p"]["servers"] = [{"address": "127.0.0.1", "port": b.port, "route": f"r{n}"}
                                     for n, b in backends.items()]
    return data


def test_route_from_session_cookie_and_path_parameter(backends: dict[str, BackendProcess]) -> None:
    async def scenario(port: int, node: Node) -> None:
        c = await Client.connect(port)
        first = await c.get("/session")
        cookie = first.header(b"set-cookie")
        assert cookie is not None and cookie.startswith(b"JSESSIONID=")
        session = cookie.split(b";")[0].decode()
        owner = first.body
        names = [(await c.get("/name", f"Cookie: theme=dark; {session}\r\n")).body for _ in range(6)]
        assert names == [owner] * 6
        names = [(await c.get("/name;jsessionid=xyz.rc?q=1")).body for _ in range(3)]
        assert names == [b"c"] * 3
        # the session's server goes down: the request goes elsewhere (no nofailover)
        node.pools["p"].find(f"127.0.0.1:{backends['c'].port}").state = "disabled"
        assert (await c.get("/name", "Cookie: JSESSIONID=xyz.rc\r\n")).body in (b"a", b"b")
        c.close()

    run(routed(backends, {"mode": "cookie", "cookie": "JSESSIONID|jsessionid"}), scenario)


def test_nofailover_answers_503_when_the_session_server_is_down(backends: dict[str, BackendProcess]) -> None:
    async def scenario(port: int, node: Node) -> None:
        node.pools["p"].find(f"127.0.0.1:{backends['b'].port}").state = "disabled"
        c = await Client.connect(port)
        r = await c.get("/name", "Cookie: JSESSIONID=1.rb\r\n")
        assert r.status == 503
        c = await Client.connect(port)
        assert (await c.get("/name", "Cookie: JSESSIONID=1.ra\r\n")).body == b"a"
        c.close()

    run(routed(backends, {"mode": "cookie", "cookie": "JSESSIONID", "nofailover": True}), scenario)


def test_insert_cookie_is_signed_and_followed(backends: dict[str, BackendProcess]) -> None:
    async def scenario(port: int, node: Node) -> None:
        c = await Client.connect(port)
        first = await c.get("/name")
        cookie = first.header(b"set-cookie")
        assert cookie is not None
        attrs = cookie.split(b"; ")
        assert attrs[0].startswith(b"SRV=") and b"HttpOnly" in attrs and b"SameSite=Lax" in attrs
        pair = attrs[0].decode()
        for _ in range(5):
            r = await c.get("/name", f"Cookie: {pair}\r\n")
            assert r.body == first.body and r.header(b"set-cookie") is None
        # a forged cookie naming another server is ignored and replaced
        value = pair.split("=", 1)[1]
        forged = "SRV=rc." + value.rsplit(".", 1)[1]
        r = await c.get("/name", f"Cookie: {forged}\r\n")
        assert r.header(b"set-cookie") is not None
        # the cookie's server is drained: sticky clients keep it, new ones go elsewhere
        owner = node.pools["p"].find(f"127.0.0.1:{backends[first.body.decode()].port}")
        owner.state = "drain"
        assert (await c.get("/name", f"Cookie: {pair}\r\n")).body == first.body
        # now down: the client moves and gets a new cookie
        owner.state = "disabled"
        moved = await c.get("/name", f"Cookie: {pair}\r\n")
        assert moved.body != first.body and moved.header(b"set-cookie") is not None
        c.close()

    run(routed(backends, {"mode": "insert", "cookie": "SRV", "secret": "s3cret"}), scenario)


def test_two_fulcrum_processes_agree_on_insert_cookies(backends: dict[str, BackendProcess], tmp_path: Path) -> None:
    nodes = []
    try:
        for i in range(2):
            port = free_port()
            data = routed(backends, {"mode": "insert", "secret": "shared"})
            data["services"]["web"]["listen"] = [f"127.0.0.1:{port}"]
            path = tmp_path / f"node{i}.toml"
            path.write_text(tomli_w.dumps(data))
            proc = FulcrumProcess(["run", "-c", str(path)], tmp_path / f"node{i}.log")
            nodes.append((proc, port))
        for proc, port in nodes:
            proc.wait_listening(port)

        async def scenario() -> None:
            one = await Client.connect(nodes[0][1])
            two = await Client.connect(nodes[1][1])
            for _ in range(6):  # six fresh clients, each sent back and forth between the nodes
                first = await one.get("/name")
                cookie = first.header(b"set-cookie")
                assert cookie is not None
                pair = cookie.split(b";")[0].decode()
                for client in (two, one, two):
                    r = await client.get("/name", f"Cookie: {pair}\r\n")
                    assert r.body == first.body and r.header(b"set-cookie") is None
            one.close()
            two.close()

        asyncio.run(asyncio.wait_for(scenario(), 30))
    finally:
        for proc, _ in nodes:
            proc.stop()
