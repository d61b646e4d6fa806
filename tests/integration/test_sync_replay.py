"""Config sync refuses replays (issue 7 item 11): a message from a year ago, the same
message twice, and a captured message replayed to a node whose state directory was wiped."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

from fulcrum.cluster.sync_state import Document, canonical, signed
from fulcrum.control.commands import execute
from tests.integration.test_sync import SECRET, Pair, both_started, offer, run, send, weight
from tests.support import wait_until

YEAR = 365 * 24 * 3600.0


def changed_document(pair: Pair, node: str, version: int, server_weight: int) -> Document:
    config = json.loads(json.dumps(pair.nodes["lb1"].sync.state.latest.config))
    config["pools"]["web"]["servers"][0]["weight"] = server_weight
    return Document(version, node, time.time(), config)


def test_a_message_signed_a_year_ago_is_refused(tmp_path: Path) -> None:
    async def scenario(pair: Pair) -> None:
        _, lb1 = await both_started(pair)
        key = lb1.sync.state.key
        newer = changed_document(pair, "lb0", key[0] + 10, 50)
        reply = await send(pair.sync_port["lb1"], offer(newer, sent=time.time() - YEAR))
        assert reply is not None and reply["type"] == "error", reply
        assert "stale message" in reply["reason"] and "max_clock_skew" in reply["reason"]
        assert weight(lb1) == 1 and lb1.sync.state.key == key
        reply = await send(pair.sync_port["lb1"], offer(newer, sent=time.time() + YEAR))  # from the future too
        assert reply is not None and reply["type"] == "error" and weight(lb1) == 1

    run(tmp_path, scenario)


def test_the_same_message_twice_is_refused_the_second_time(tmp_path: Path) -> None:
    async def scenario(pair: Pair) -> None:
        _, lb1 = await both_started(pair)
        message = offer(changed_document(pair, "lb0", lb1.sync.state.key[0] + 1, 7))
        first = await send(pair.sync_port["lb1"], message)
        assert first is not None and first["status"] == "accepted" and weight(lb1) == 7
        again = await send(pair.sync_port["lb1"], message)
        assert again is not None and again["type"] == "error" and "already received" in again["reason"]

    run(tmp_path, scenario)


def test_a_node_with_a_wiped_state_dir_refuses_a_captured_older_version(tmp_path: Path) -> None:
    async def scenario(pair: Pair) -> None:
        lb0, lb1 = await both_started(pair)
        # An attacker captures a genuine offer of version N (weight 50) ...
        captured = offer(changed_document(pair, "zz", lb1.sync.state.key[0] + 1, 50))
        reply = await send(pair.sync_port["lb1"], captured)
        assert reply is not None and reply["status"] == "accepted" and weight(lb1) == 50
        # ... the cluster moves on to N+1 (weight 3) ...
        await execute(lb1, "server.weight", {"server": "0", "weight": 3})
        await wait_until(lambda: weight(lb0) == 3)
        await pair.stop("lb0")  # (so lb1 cannot catch up before the replay)
        # ... lb1's state directory is wiped and it restarts from its file (weight 3)
        await pair.stop("lb1")
        shutil.rmtree(tmp_path / "lb1")
        lb1 = await pair.start("lb1")
        assert weight(lb1) == 3 and lb1.sync.state.key[0] == 1  # a fresh history
        reply = await send(pair.sync_port["lb1"], captured)  # replayed: (N, "zz") > (1, "lb1")
        assert reply is not None and reply["type"] == "error", reply
        assert "sent before this node started" in reply["reason"]
        assert weight(lb1) == 3

    run(tmp_path, scenario)


def test_a_replayed_or_foreign_reply_is_not_taken(tmp_path: Path) -> None:
    """A signed reply that does not echo this request's nonce (a reply captured earlier and
    played back by whoever answers on the peer's address) carries a newer document: ignored."""
    async def scenario(pair: Pair) -> None:
        lb0, _ = await both_started(pair)
        await pair.stop("lb1")
        key = lb0.sync.state.key
        config = json.loads(json.dumps(lb0.sync.state.latest.config))
        config["pools"]["web"]["servers"][0]["weight"] = 42
        newer = Document(key[0] + 5, "zz", time.time(), config)

        async def impostor(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readline()
            reply = {"type": "hello", "version": newer.version, "vnode": newer.node, "node": "lb1",
                     "time": time.time(), "re": "0" * 32, "document": newer.to_json(SECRET.encode())}
            writer.write(canonical(signed(reply, SECRET.encode())) + b"\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(impostor, "127.0.0.1", pair.sync_port["lb1"])
        try:
            await lb0.sync.hello(f"127.0.0.1:{pair.sync_port['lb1']}")
        finally:
            server.close()
        assert weight(lb0) == 1 and lb0.sync.state.key == key

    run(tmp_path, scenario)
