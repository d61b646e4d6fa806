"""`workers = 2` makes the choices one worker would: least-connection over node-wide
counts, pen's client table shared, control commands reaching every worker. Real `fulcrum run` processes on loopback; SO_REUSEPORT
spreads the connections over both workers."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
import tomli_w

from tests.integration.helpers import Backends, service_config
from tests.support import FULCRUM, FulcrumProcess, free_port, wait_until

CONNECTIONS = 12  # 2 * 0.5^12: the chance that SO_REUSEPORT gives them all to one worker


def start(tmp_path: Path, data: dict) -> tuple[FulcrumProcess, int]:  # type: ignore[type-arg]
    data["workers"] = 2
    port = int(data["services"]["svc"]["listen"][0].rsplit(":", 1)[1])
    config = tmp_path / "f.toml"
    config.write_text(tomli_w.dumps(data))
    node = FulcrumProcess(["run", "-c", str(config)], tmp_path / "node.log")
    return node, port


async def wait_serving(node: FulcrumProcess, backends: Backends, port: int) -> None:
    def both_started() -> bool:
        assert node.proc.poll() is None, node.output()
        return node.output().count("fulcrum started") == 2

    try:  # 30 s: starting is slow on a loaded machine
        await wait_until(both_started, timeout=30, step=0.05, what="both workers started")
    except AssertionError as err:
        raise AssertionError(f"{err}\n{node.output()}") from None
    backends.hits.clear()


async def hold(port: int, source: str = "127.0.0.1") -> asyncio.StreamWriter:
    """A long-lived connection through the balancer (echo backends answer at EOF only)."""
    _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)), 5)
    writer.write(b"x")
    await writer.drain()
    return writer


async def settle(backends: Backends, total: int) -> None:
    try:
        await wait_until(lambda: sum(backends.hits.values()) >= total, what=f"{total} connections at the backends")
    except AssertionError as err:
        raise AssertionError(f"{err}: {dict(backends.hits)}") from None


async def ctl(sock: str, *words: str) -> str:
    process = await asyncio.create_subprocess_exec(FULCRUM, "ctl", "-s", sock, *words,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    return out.decode()


def test_lc_over_two_workers_spreads_long_lived_connections_evenly(tmp_path: Path) -> None:
    sock = str(tmp_path / "control.sock")

    async def scenario() -> None:
        backends = Backends()
        ports = [await backends.start(name, echo=True) for name in ("a", "b", "c")]
        data = service_config([f"127.0.0.1:{free_port()}"], ports)
        data["pools"]["p"]["scheduler"] = "lc"
        data["control"] = {"socket": sock}
        node, port = start(tmp_path, data)
        held = []
        try:
            await wait_serving(node, backends, port)
            for _ in range(CONNECTIONS):
                held.append(await hold(port))
                await settle(backends, len(held))  # each pick sees the one before
            # one worker's lc: never more than one apart, whichever worker accepted
            assert sorted(backends.hits.values()) == [CONNECTIONS // 3] * 3, dict(backends.hits)
            # the first worker answers with node-wide counts: every open connection
            servers = json.loads(await ctl(sock, "servers"))
            assert sum(s["active"] for s in servers) == CONNECTIONS, servers
            # finished connections: the other worker's totals reach the first within a second
            for writer in held:
                writer.write_eof()
            held.clear()

            async def all_counted() -> list[dict]:  # type: ignore[type-arg]
                servers = json.loads(await ctl(sock, "servers"))
                return servers if sum(s["connections"] for s in servers) == CONNECTIONS else []

            servers = await wait_until(all_counted, timeout=30, step=0.1,
                                       what=f"{CONNECTIONS} connections counted node-wide")
            assert sum(s["connections"] for s in servers) == CONNECTIONS, servers
            assert sum(s["active"] for s in servers) == 0
        finally:
            for writer in held:
                writer.close()
            node.stop()
            await backends.close()

    asyncio.run(scenario())


def test_the_client_table_is_one_for_both_workers(tmp_path: Path) -> None:
    async def scenario() -> None:
        backends = Backends()
        ports = [await backends.start(name, echo=True) for name in ("a", "b")]
        data = service_config([f"127.0.0.1:{free_port()}"], ports)
        data["pools"]["p"].update(scheduler="lc", sticky={"mode": "source", "expiry": "5m"})
        node, port = start(tmp_path, data)
        held = []
        try:
            await wait_serving(node, backends, port)
            held.append(await hold(port, "127.0.0.2"))  # a: the least loaded, then remembered
            await settle(backends, 1)
            held.append(await hold(port, "127.0.0.3"))  # b: lc over node-wide counts
            await settle(backends, 2)
            assert dict(backends.hits) == {"a": 1, "b": 1}
            for _ in range(CONNECTIONS):  # through either worker, each client to its server
                held.append(await hold(port, "127.0.0.2"))
                held.append(await hold(port, "127.0.0.3"))
            await settle(backends, 2 + 2 * CONNECTIONS)
            assert dict(backends.hits) == {"a": 1 + CONNECTIONS, "b": 1 + CONNECTIONS}
        finally:
            for writer in held:
                writer.close()
            node.stop()
            await backends.close()

    asyncio.run(scenario())


def test_ctl_commands_act_on_every_worker(tmp_path: Path) -> None:
    sock = str(tmp_path / "control.sock")

    async def scenario() -> None:
        backends = Backends()
        ports = [await backends.start(name, echo=True) for name in ("a", "b")]
        data = service_config([f"127.0.0.1:{free_port()}"], ports)
        data["control"] = {"socket": sock}
        node, port = start(tmp_path, data)
        held = []
        try:
            await wait_serving(node, backends, port)
            await ctl(sock, "server.weight", f"127.0.0.1:{ports[0]}", "0")  # quiesce a
            for _ in range(CONNECTIONS):
                held.append(await hold(port))
            await settle(backends, CONNECTIONS)
            assert dict(backends.hits) == {"b": CONNECTIONS}  # no worker sends to a
            # fulcrum ctl: a back, b out; both workers follow
            await ctl(sock, "server.weight", f"127.0.0.1:{ports[0]}", "1")
            await ctl(sock, "server.disable", f"127.0.0.1:{ports[1]}")
            backends.hits.clear()
            for _ in range(CONNECTIONS):
                held.append(await hold(port))
            await settle(backends, CONNECTIONS)
            assert dict(backends.hits) == {"a": CONNECTIONS}
        finally:
            for writer in held:
                writer.close()
            node.stop()
            await backends.close()

    asyncio.run(scenario())


@pytest.mark.skipif(os.geteuid() != 0, reason="pen's port is opened as root, then fulcrum runs as nobody")
def test_pens_control_port_is_served_once_and_acts_on_every_worker(tmp_path: Path) -> None:
    async def scenario() -> None:
        backends = Backends()
        ports = [await backends.start(name, echo=True) for name in ("a", "b")]
        data = service_config([f"127.0.0.1:{free_port()}"], ports)
        pen_port = free_port()
        data["control"] = {"pen_port": f"127.0.0.1:{pen_port}", "socket": "off"}
        data["user"] = "nobody"  # pen's unauthenticated port never runs with root's power
        node, port = start(tmp_path, data)
        held = []
        try:
            await wait_serving(node, backends, port)
            reader, writer = await asyncio.open_connection("127.0.0.1", pen_port)
            writer.write(b"server 0 weight 0\n")  # pen numbers servers from 0: quiesce a
            writer.write_eof()
            await asyncio.wait_for(reader.read(), 10)
            writer.close()
            for _ in range(CONNECTIONS):
                held.append(await hold(port))
            await settle(backends, CONNECTIONS)
            assert dict(backends.hits) == {"b": CONNECTIONS}  # no worker sends to a
            assert "in use" not in node.output()  # the port was opened once, by the first worker
        finally:
            for writer in held:
                writer.close()
            node.stop()
            await backends.close()

    asyncio.run(scenario())
