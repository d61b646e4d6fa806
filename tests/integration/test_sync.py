"""Config sync between two in-process nodes on loopback: real sockets, real files.

Both nodes share one service address (SO_REUSEPORT), as two machines would share the
same configuration; what differs between them is node-local (log level, status file,
sync section)."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import tomllib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from click.testing import CliRunner

from fulcrum.cli.main import main as fulcrum_cli
from fulcrum.cli.sync import rollback_file
from fulcrum.cluster.sync_state import Document, canonical, signed
from fulcrum.config.load import load_file
from fulcrum.control.commands import execute
from fulcrum.node import Node
from tests.support import free_port, wait_until

SECRET = "the pair's shared sync secret"


class Pair:
    """lb0 and lb1: each its own file, state directory and sync port."""

    def __init__(self, tmp: Path, extra: Callable[[str], dict[str, Any]] = lambda name: {}):
        """`extra(name)`: more sync settings for node `name`."""
        self.tmp = tmp
        listen = f"127.0.0.1:{free_port()}"
        ports = {"lb0": free_port(), "lb1": free_port()}
        self.sync_port = ports
        self.nodes: dict[str, Node] = {}
        for name, other in (("lb0", "lb1"), ("lb1", "lb0")):
            data = {
                "services": {"web": {"listen": [listen], "pool": "web"}},
                "pools": {"web": {"servers": ["127.0.0.1:9001", "127.0.0.1:9002"],
                                  "health": {"kind": "none"}}},
                "log": {"level": "debug" if name == "lb0" else "warning"},
                "control": {"status_file": str(tmp / f"{name}-status.html")},
                "sync": {"node": name, "listen": f"127.0.0.1:{ports[name]}",
                         "peers": [f"127.0.0.1:{ports[other]}"], "secret": SECRET,
                         "state_dir": str(tmp / name), "interval": "100ms", "timeout": "2s",
                         **extra(name)},
            }
            self.path(name).write_text(tomli_w.dumps(data))

    def path(self, name: str) -> Path:
        return self.tmp / f"{name}.toml"

    async def start(self, name: str) -> Node:
        node = Node(load_file(self.path(name)), reuse_port=True)
        node.config_path = str(self.path(name))
        await node.start()
        self.nodes[name] = node
        return node

    async def stop(self, name: str) -> None:
        await self.nodes.pop(name).stop(drain=0)

    async def close(self) -> None:
        for name in list(self.nodes):
            await self.stop(name)


Scenario = Callable[[Pair], Awaitable[None]]


def run(tmp_path: Path, scenario: Scenario, pair_factory: Callable[[Path], Pair] = Pair) -> None:
    async def main() -> None:
        pair = pair_factory(tmp_path)
        try:
            async with asyncio.timeout(60):
                await scenario(pair)
        finally:
            await pair.close()

    asyncio.run(main())


def weight(node: Node, index: int = 0) -> int:
    return node.config.pools["web"].servers[index].weight


async def both_started(pair: Pair) -> tuple[Node, Node]:
    lb0, lb1 = await pair.start("lb0"), await pair.start("lb1")
    # First contact: both made version 1 of the same content; they settle on one.
    await wait_until(lambda: lb0.sync.state.key == lb1.sync.state.key)
    return lb0, lb1


async def send(port: int, message: dict[str, Any]) -> dict[str, Any] | None:
    """One raw request to a node's sync port; its reply, or None when it closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(canonical(message) + b"\n")
        await writer.drain()
        async with asyncio.timeout(5):
            line = await reader.readline()
    finally:
        writer.close()
    return json.loads(line) if line else None


def offer(document: Document, secret: str = SECRET, envelope_secret: str = SECRET,
          sent: float | None = None) -> dict[str, Any]:
    """A signed offer as a peer sends it: its time (now unless `sent`) and a fresh nonce."""
    body = {"type": "offer", "node": "tester", "time": time.time() if sent is None else sent,
            "nonce": secrets.token_hex(16), "document": document.to_json(secret.encode())}
    return signed(body, envelope_secret.encode())


def test_a_command_on_one_node_reaches_the_peer_which_keeps_its_own_settings(tmp_path: Path) -> None:
    async def scenario(pair: Pair) -> None:
        lb0, lb1 = await both_started(pair)
        start_key = lb0.sync.state.key
        await execute(lb0, "server.weight", {"server": "0", "weight": 7})
        await wait_until(lambda: weight(lb1) == 7)
        assert lb1.config.log.level == "warning"  # lb1's own, not lb0's debug
        assert lb1.config.control.status_file.endswith("lb1-status.html")
        assert lb1.config.sync.node == "lb1"
        assert lb1.pools["web"].find("127.0.0.1:9001") is not None
        # written to lb1's file: a restart keeps the change and lb1's settings
        on_disk = load_file(pair.path("lb1"))
        assert on_disk == lb1.config
        assert lb1.sync.state.key == lb0.sync.state.key == (start_key[0] + 1, "lb0")
        assert lb1.sync.store.latest().key == lb1.sync.state.key
        assert load_file(pair.path("lb0")) == lb0.config  # the node it was made on keeps it too
        # no bounce: another exchange in both directions finds nothing new
        await lb0.sync.hello(f"127.0.0.1:{pair.sync_port['lb1']}")
        await lb1.sync.hello(f"127.0.0.1:{pair.sync_port['lb0']}")
        assert lb0.sync.state.key == lb1.sync.state.key == (start_key[0] + 1, "lb0")

    run(tmp_path, scenario)


def test_a_file_reload_on_either_node_reaches_the_other(tmp_path: Path) -> None:
    async def scenario(pair: Pair) -> None:
        lb0, lb1 = await both_started(pair)
        # the SIGHUP path: edit the file, read it, reload
        data = tomllib.loads(pair.path("lb1").read_text())
        data["pools"]["web"]["servers"].append("127.0.0.1:9003")
        pair.path("lb1").write_text("# edited by hand\n" + tomli_w.dumps(data))
        await lb1.reload(load_file(pair.path("lb1")))
        await wait_until(lambda: len(lb0.config.pools["web"].servers) == 3)
        assert pair.path("lb1").read_text().startswith("# edited by hand\n")  # not rewritten
        assert lb0.pools["web"].find("127.0.0.1:9003") is not None
        assert lb0.config.log.level == "debug"
        assert load_file(pair.path("lb0")) == lb0.config

    run(tmp_path, scenario)


def test_bad_hmac_older_versions_and_invalid_configurations_change_nothing(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(pair: Pair) -> None:
        lb0, lb1 = await both_started(pair)
        port = pair.sync_port["lb1"]
        before, file_before = lb1.config, pair.path("lb1").read_text()
        key = lb1.sync.state.key
        changed = json.loads(json.dumps(lb1.sync.state.latest.config))
        changed["pools"]["web"]["servers"][0]["weight"] = 50
        newer = Document(key[0] + 10, "lb0", 0.0, changed)

        wrong = "a secret lb1 does not share"
        assert await send(port, offer(newer, secret=wrong, envelope_secret=wrong)) is None
        reply = await send(port, offer(newer, secret=wrong))  # envelope right, document forged
        assert reply is not None and reply["status"] == "rejected" and "hmac" in reply["reason"]

        older = Document(key[0], "lb0" if key[1] > "lb0" else "", 0.0, changed)
        reply = await send(port, offer(older))
        assert reply is not None and reply["status"] == "ignored"

        invalid = json.loads(json.dumps(changed))
        invalid["services"]["web"]["pool"] = "nowhere"
        for _ in range(2):  # offered again (as every exchange would): refused again, said once
            reply = await send(port, offer(Document(key[0] + 20, "lb0", 0.0, invalid)))
            assert reply is not None and reply["status"] == "rejected"
            assert "services.web.pool: no pool named 'nowhere'" in reply["reason"]
        errors = [r for r in caplog.records if r.levelno == logging.ERROR and "nowhere" in r.getMessage()]
        assert len(errors) == 1

        assert lb1.config == before and weight(lb1) == 1
        assert pair.path("lb1").read_text() == file_before
        assert lb1.sync.state.key == key and lb1.sync.store.latest().key == key
        # the real thing still works afterwards, and counts above what it has seen
        await execute(lb0, "server.weight", {"server": "1", "weight": 3})
        await wait_until(lambda: weight(lb1, 1) == 3)

    run(tmp_path, scenario)


def test_a_node_that_was_down_catches_up_when_it_returns(tmp_path: Path) -> None:
    async def scenario(pair: Pair) -> None:
        lb0, _ = await both_started(pair)
        await pair.stop("lb1")
        await execute(lb0, "server.weight", {"server": "0", "weight": 4})
        await execute(lb0, "server.drain", {"server": "1"})
        lb1 = await pair.start("lb1")
        await wait_until(lambda: lb1.config.pools["web"].servers[1].state == "drain")
        assert weight(lb1) == 4 and lb1.config.log.level == "warning"
        assert lb1.sync.state.key == lb0.sync.state.key
        assert load_file(pair.path("lb1")) == lb1.config

    run(tmp_path, scenario)


def test_rollback_goes_back_on_every_node_as_a_new_version(tmp_path: Path) -> None:
    async def scenario(pair: Pair) -> None:
        lb0, lb1 = await both_started(pair)
        original = lb0.sync.state.key[0]
        await execute(lb0, "server.weight", {"server": "0", "weight": 9})
        await wait_until(lambda: weight(lb1) == 9)

        listing = CliRunner().invoke(fulcrum_cli, ["sync", "versions", "-c", str(pair.path("lb1"))])
        assert listing.exit_code == 0, listing.output
        assert f"  {original + 1}  lb0" in listing.output
        current = [line for line in listing.output.splitlines() if line.startswith("*")]
        assert len(current) == 1 and f" {original + 1}  " in current[0]

        rollback_file(str(pair.path("lb1")), original)  # on lb1, the other node
        await lb1.reload(load_file(pair.path("lb1")))  # what `fulcrum sync rollback` signals
        await wait_until(lambda: weight(lb0) == 1)
        assert weight(lb1) == 1
        assert lb0.sync.state.key == lb1.sync.state.key == (original + 2, "lb1")
        assert lb1.config.log.level == "warning" and lb0.config.log.level == "debug"

    run(tmp_path, scenario)


def test_changes_made_apart_settle_on_the_same_winner_on_both_nodes(tmp_path: Path) -> None:
    async def scenario(pair: Pair) -> None:
        lb0, _ = await both_started(pair)
        start = lb0.sync.state.key[0]
        await pair.stop("lb1")
        await execute(lb0, "server.weight", {"server": "0", "weight": 5})  # lb0's version
        await pair.stop("lb0")
        lb1 = await pair.start("lb1")
        await execute(lb1, "server.weight", {"server": "0", "weight": 6})  # lb1's, same number
        lb0 = await pair.start("lb0")
        # both made version start+1; the higher node id (lb1) wins on both
        await wait_until(lambda: weight(lb0) == 6)
        assert weight(lb1) == 6
        assert lb0.sync.state.key == lb1.sync.state.key == (start + 1, "lb1")

    run(tmp_path, scenario)


def test_changed_sync_settings_restart_sync_and_a_busy_port_leaves_the_node_serving(tmp_path: Path) -> None:
    async def scenario(pair: Pair) -> None:
        lb0, lb1 = await both_started(pair)
        first = lb1.sync
        data = tomllib.loads(pair.path("lb1").read_text())
        data["sync"]["listen"] = f"127.0.0.1:{pair.sync_port['lb0']}"  # taken by lb0
        pair.path("lb1").write_text(tomli_w.dumps(data))
        await lb1.reload(load_file(pair.path("lb1")))
        assert first.server is not None and not first.server.is_serving()
        assert lb1.sync is None  # not started, and said so; the node still runs
        assert lb1.config.sync.listen == data["sync"]["listen"]

        port = free_port()
        data["sync"]["listen"] = f"127.0.0.1:{port}"
        pair.path("lb1").write_text(tomli_w.dumps(data))
        await lb1.reload(load_file(pair.path("lb1")))
        assert lb1.sync is not None and lb1.sync is not first
        # lb0 still sends to the old port; lb1 pulls from lb0 by itself
        await execute(lb0, "server.weight", {"server": "0", "weight": 2})
        await wait_until(lambda: weight(lb1) == 2)

    run(tmp_path, scenario)


def test_a_file_that_cannot_be_rewritten_does_not_undo_an_applied_version(tmp_path: Path) -> None:
    async def scenario(pair: Pair) -> None:
        lb0, lb1 = await both_started(pair)
        lb1.config_path = str(pair.tmp / "gone" / "lb1.toml")  # its directory does not exist
        await execute(lb0, "server.weight", {"server": "0", "weight": 3})
        await wait_until(lambda: weight(lb1) == 3)
        await lb1.sync.hello(f"127.0.0.1:{pair.sync_port['lb0']}")
        assert lb1.sync.state.key == lb0.sync.state.key  # taken, not rolled back
        assert lb1.sync.store.latest().key == lb0.sync.state.key

    run(tmp_path, scenario)
