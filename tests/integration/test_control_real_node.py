"""The command table and the pen control port against the lead's real Node (async
reload, live pools), listening on loopback."""

from __future__ import annotations

import asyncio

from fulcrum.control.commands import execute
from fulcrum.control.penctl import respond
from fulcrum.importers.pen import parse_pen_argv
from fulcrum.node import Node
from tests.support import free_port


def test_commands_reload_the_real_node() -> None:
    config = parse_pen_argv(f"127.0.0.1:{free_port()} 127.0.0.1:9001 127.0.0.1:9002".split()).config

    async def scenario() -> tuple[list[str], Node]:
        node = Node(config)
        await node.start()
        try:
            replies = [await respond(node, line) for line in
                       ("server 1 weight 4", "hash", "clients_max 10", "server 0 blacklist 3", "servers", "mode")]
            await execute(node, "server.drain", {"server": "127.0.0.1:9001"})
            return replies, node
        finally:
            await node.stop(0)

    replies, node = asyncio.run(scenario())
    assert replies[4].splitlines()[1] == "1 addr 127.0.0.1 port 9002 conn 0 max 0 hard 0 weight 4 prio 0 sx 0 rx 0"
    assert replies[5] == "hash no roundrobin no stubborn no weight no prio\n"
    pool = node.pools["pen"]
    assert pool.scheduler.name == "hash" and pool.backends[1].weight == 4 and pool.backends[0].state == "drain"
    assert pool.clients is not None and pool.clients.size == 10
    assert pool.backends[0].blacklisted_until > 0
    assert node.config.pools["pen"].servers[0].state == "drain"
