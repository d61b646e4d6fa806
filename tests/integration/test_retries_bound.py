"""Bounded work per connection and per request (issue 7 item 10): a pool whose servers all
refuse makes one client try at most 1 + `retries` of them, in TCP and in HTTP."""

from __future__ import annotations

import asyncio

from fulcrum.node import Node
from fulcrum.observe import CONNECT_FAILED, Observation
from tests.integration.helpers import make_node, pool_config, refused, service_config
from tests.integration.test_http_proxy import config, run
from tests.integration.test_http_support import Client
from tests.support import free_port, wait_until


def dead_ports(count: int) -> list[int]:
    """Ports nobody listens on, all different (free_port may hand out one twice)."""
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def test_unbounded_work_tcp_connection_tries_at_most_one_plus_retries_servers() -> None:
    async def main() -> None:
        port = free_port()
        pool = pool_config(dead_ports(20), retries=2, blacklist="0s", health={"kind": "none", "passive": False})
        node = make_node(service_config([f"127.0.0.1:{port}"], [], pool))
        await node.start()
        try:
            assert await refused("127.0.0.1", port)
            # the close reaches the client as the last try fails; once the connection is
            # released no further try can start, so the count is final
            await wait_until(lambda: node.connections == 0, what="the connection released")
            assert sum(b.failures for b in node.pools["p"].backends) == 3
        finally:
            await node.stop(drain=0)

    asyncio.run(main())


def test_unbounded_work_http_request_tries_at_most_one_plus_retries_servers() -> None:
    async def scenario(port: int, node: Node) -> None:
        seen: list[Observation] = []
        node.observer.sinks.append(seen.append)
        c = await Client.connect(port)
        r = await c.get("/name")
        assert r.status == 503
        assert sum(b.failures for b in node.pools["p"].backends) == 4  # the default: retries = 3
        (obs,) = seen
        assert (obs.retries, obs.termination) == (3, CONNECT_FAILED)
        c.close()

    run(config(dead_ports(20), pool={"blacklist": "0s", "health": {"kind": "none", "passive": False}}), scenario)
