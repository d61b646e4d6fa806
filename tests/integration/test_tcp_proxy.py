"""The TCP relay end to end on loopback: real sockets, in-process node."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from fulcrum.config.load import load_dict
from tests.integration.helpers import (
    Backends,
    ask,
    ask_name,
    make_node,
    pool_config,
    refused,
    service_config,
)
from tests.support import free_port, wait_until

Scenario = Callable[[Backends], Awaitable[None]]


def run(scenario: Scenario) -> None:
    async def main() -> None:
        backends = Backends()
        try:
            async with asyncio.timeout(60):
                await scenario(backends)
        finally:
            await backends.close()

    asyncio.run(main())


async def started(data: dict[str, Any]) -> Any:
    node = make_node(data)
    await node.start()
    return node


def test_round_robin_spreads_evenly_over_ipv4_and_ipv6() -> None:
    async def scenario(backends: Backends) -> None:
        ports = [await backends.start(n) for n in ("a", "b", "c")]
        port = free_port()
        node = await started(service_config([f"127.0.0.1:{port}", f"[::1]:{port}"], ports))
        try:
            names = [await ask_name("127.0.0.1" if i % 2 else "::1", port) for i in range(30)]
        finally:
            await node.stop(drain=0)
        assert {n: names.count(n) for n in "abc"} == {"a": 10, "b": 10, "c": 10}

    run(scenario)


def test_weights_shape_the_spread() -> None:
    async def scenario(backends: Backends) -> None:
        ports = [await backends.start(n) for n in ("light", "heavy")]
        port = free_port()
        pool = pool_config([], scheduler="wrr")
        pool["servers"] = [{"address": "127.0.0.1", "port": ports[0], "weight": 1},
                           {"address": "127.0.0.1", "port": ports[1], "weight": 3}]
        node = await started(service_config([f"127.0.0.1:{port}"], ports, pool))
        try:
            names = [await ask_name("127.0.0.1", port) for _ in range(40)]
        finally:
            await node.stop(drain=0)
        assert names.count("light") == 10 and names.count("heavy") == 30

    run(scenario)


def test_ipv6_front_end_for_ipv4_servers() -> None:
    async def scenario(backends: Backends) -> None:
        ports = [await backends.start("v4only", host="127.0.0.1")]
        port = free_port("::1")
        node = await started(service_config([f"[::1]:{port}"], ports))
        try:
            assert await ask_name("::1", port) == "v4only"
        finally:
            await node.stop(drain=0)

    run(scenario)


def test_server_dying_mid_run_is_routed_around_without_failed_connections() -> None:
    async def scenario(backends: Backends) -> None:
        ports = [await backends.start(n) for n in ("a", "b", "c")]
        port = free_port()
        node = await started(service_config([f"127.0.0.1:{port}"], ports))
        try:
            before = [await ask_name("127.0.0.1", port) for _ in range(9)]
            await backends.stop("b")
            after = [await ask_name("127.0.0.1", port) for _ in range(20)]
        finally:
            await node.stop(drain=0)
        assert set(before) == {"a", "b", "c"}
        assert set(after) == {"a", "c"}  # every connection succeeded, none reached b
        assert node.pools["p"].find(f"127.0.0.1:{ports[1]}").failures >= 1

    run(scenario)


def test_emergency_server_takes_over_when_every_server_is_down() -> None:
    async def scenario(backends: Backends) -> None:
        dead = [free_port(), free_port()]
        emergency = await backends.start("emergency")
        port = free_port()
        pool = pool_config(dead, emergency=f"127.0.0.1:{emergency}", blacklist="0s",
                           health={"kind": "tcp", "interval": "100ms", "timeout": "100ms",
                                   "rise": 1, "fall": 1})
        node = await started(service_config([f"127.0.0.1:{port}"], dead, pool))
        first = node.pools["p"].find(f"127.0.0.1:{dead[0]}")
        try:
            assert [await ask_name("127.0.0.1", port) for _ in range(3)] == ["emergency"] * 3
            await backends.start("a", port=dead[0])
            await wait_until(lambda: first.healthy)
            assert await ask_name("127.0.0.1", port) == "a"  # primaries win again once up
        finally:
            await node.stop(drain=0)

    run(scenario)


def test_no_server_available_closes_the_client() -> None:
    async def scenario(backends: Backends) -> None:
        dead = [free_port()]
        port = free_port()
        node = await started(service_config([f"127.0.0.1:{port}"], dead))
        try:
            assert await refused("127.0.0.1", port)
        finally:
            await node.stop(drain=0)
        assert node.connections == 0

    run(scenario)


def test_failed_server_is_blacklisted_for_the_configured_time() -> None:
    async def scenario(backends: Backends) -> None:
        good = await backends.start("good")
        flaky = free_port()
        port = free_port()
        pool = pool_config([flaky, good], blacklist="1h")
        node = await started(service_config([f"127.0.0.1:{port}"], [], pool))
        try:
            assert await ask_name("127.0.0.1", port) == "good"  # flaky refused, failed over
            await backends.start("flaky", port=flaky)
            names = [await ask_name("127.0.0.1", port) for _ in range(6)]
        finally:
            await node.stop(drain=0)
        assert names == ["good"] * 6  # flaky is back but still blacklisted

    run(scenario)


def test_stubborn_pool_does_not_fail_over() -> None:
    async def scenario(backends: Backends) -> None:
        good = await backends.start("good")
        dead = free_port()
        port = free_port()
        pool = pool_config([dead, good], stubborn=True, blacklist="0s",
                           health={"kind": "none", "passive": False})
        node = await started(service_config([f"127.0.0.1:{port}"], [], pool))
        try:
            answers = [await ask("127.0.0.1", port) if i % 2 else await refused("127.0.0.1", port)
                       for i in range(4)]
        finally:
            await node.stop(drain=0)
        # round robin alternates dead/good; the dead one's clients are closed, not moved
        assert answers == [True, b"good\n", True, b"good\n"]

    run(scenario)


def established(sock: socket.socket) -> bool:
    try:
        sock.getpeername()
        return True
    except OSError:  # not (yet) connected
        return False


def test_connect_timeout_fails_over_to_another_server() -> None:
    async def scenario(backends: Backends) -> None:
        good = await backends.start("good")
        # A listener that never accepts, with its queue full: the kernel drops further
        # SYNs, so connecting to it hangs until our connect timeout.
        blackhole = socket.socket()
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(0)
        fillers = []
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(blackhole.getsockname())
            fillers.append(filler)
        # the queue is full once the first filler is established (backlog 0 holds one)
        await wait_until(lambda: any(established(f) for f in fillers), what="the blackhole's queue full")
        port = free_port()
        pool = pool_config([blackhole.getsockname()[1], good])
        data = service_config([f"127.0.0.1:{port}"], [], pool)
        data["timeouts"] = {"connect": "300ms"}
        node = await started(data)
        try:
            names = [await ask_name("127.0.0.1", port) for _ in range(2)]
        finally:
            await node.stop(drain=0)
            for sock in [blackhole, *fillers]:
                sock.close()
        assert names == ["good", "good"]

    run(scenario)


def test_half_close_is_passed_through_both_ways() -> None:
    async def scenario(backends: Backends) -> None:
        ports = [await backends.start("echo", echo=True)]
        port = free_port()
        node = await started(service_config([f"127.0.0.1:{port}"], ports))
        try:
            # The echo backend answers only after it sees our EOF: that needs the relay to
            # pass our half-close on while keeping the way back open.
            reply = await ask("127.0.0.1", port, payload=b"first part, " * 1000 + b"end")
        finally:
            await node.stop(drain=0)
        assert reply == b"echo:" + b"first part, " * 1000 + b"end"

    run(scenario)


def test_large_transfer_with_slow_reader_arrives_intact() -> None:
    async def scenario(backends: Backends) -> None:
        ports = [await backends.start("echo", echo=True)]
        port = free_port()
        node = await started(service_config([f"127.0.0.1:{port}"], ports))
        payload = bytes(range(256)) * 40_000  # ~10 MB
        try:
            async with asyncio.timeout(30):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(payload)
                await writer.drain()
                writer.write_eof()
                received = bytearray()
                while chunk := await reader.read(65536):
                    received += chunk
                    if len(received) % (1 << 20) < 65536:
                        await asyncio.sleep(0.01)  # a slow reader: the relay must hold back
                writer.close()
        finally:
            await node.stop(drain=0)
        assert bytes(received) == b"echo:" + payload

    run(scenario)


def test_global_connection_limit_refuses_extra_clients() -> None:
    async def scenario(backends: Backends) -> None:
        ports = [await backends.start("echo", echo=True)]
        port = free_port()
        data = service_config([f"127.0.0.1:{port}"], ports)
        data["max_connections"] = 2
        node = await started(data)
        held = []
        try:
            for _ in range(2):
                held.append(await asyncio.open_connection("127.0.0.1", port))
            await wait_until(lambda: node.connections == 2)
            assert await refused("127.0.0.1", port)  # the third is closed at once
            for reader, writer in held:
                writer.write(b"x")
                writer.write_eof()
                assert await asyncio.wait_for(reader.read(), 5) == b"echo:x"
                writer.close()
            await wait_until(lambda: node.connections == 0)
            assert await ask("127.0.0.1", port, b"y") == b"echo:y"  # room again
        finally:
            await node.stop(drain=0)

    run(scenario)


def test_a_node_started_on_a_newer_configuration_uses_its_connection_limit() -> None:
    # a restarted worker's node is given the configuration re-read since it was made
    # (cli/workers.py); its node-wide limit stayed the old one until the next reload
    async def scenario(backends: Backends) -> None:
        ports = [await backends.start("echo", echo=True)]
        port = free_port()
        data = service_config([f"127.0.0.1:{port}"], ports)
        node = make_node(data)
        node.config = load_dict({**data, "max_connections": 1})
        await node.start()
        try:
            held = await asyncio.open_connection("127.0.0.1", port)
            await wait_until(lambda: node.connections == 1)
            assert await refused("127.0.0.1", port)
            held[1].close()
        finally:
            await node.stop(drain=0)

    run(scenario)


def test_server_hard_limit_sends_extra_clients_elsewhere() -> None:
    async def scenario(backends: Backends) -> None:
        small = await backends.start("small", echo=True)
        big = await backends.start("big", echo=True)
        port = free_port()
        pool = pool_config([], scheduler="rr")
        pool["servers"] = [{"address": "127.0.0.1", "port": small, "hard_limit": 1},
                           {"address": "127.0.0.1", "port": big}]
        node = await started(service_config([f"127.0.0.1:{port}"], [], pool))
        try:
            held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
            await wait_until(lambda: backends.hits["small"] + backends.hits["big"] == 4)
            assert backends.hits["small"] == 1 and backends.hits["big"] == 3
            for _, writer in held:
                writer.close()
        finally:
            await node.stop(drain=0)

    run(scenario)


def test_idle_connections_are_closed() -> None:
    async def scenario(backends: Backends) -> None:
        ports = [await backends.start("echo", echo=True)]
        port = free_port()
        data = service_config([f"127.0.0.1:{port}"], ports)
        data["timeouts"] = {"idle": "200ms"}
        node = await started(data)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by fulcrum
            writer.close()
            await wait_until(lambda: node.connections == 0)
        finally:
            await node.stop(drain=0)

    run(scenario)


def test_client_table_keeps_a_client_on_its_server() -> None:
    async def scenario(backends: Backends) -> None:
        ports = [await backends.start(n) for n in ("a", "b", "c")]
        port = free_port()
        pool = pool_config(ports, sticky={"mode": "source"})
        node = await started(service_config([f"127.0.0.1:{port}"], ports, pool))
        try:
            names = {await ask_name("127.0.0.1", port) for _ in range(6)}
        finally:
            await node.stop(drain=0)
        assert len(names) == 1

    run(scenario)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_relay_works_on_both_event_loops(loop: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from fulcrum.proxy.loop import loop_factory

    monkeypatch.setenv("FULCRUM_LOOP", loop)
    factory = loop_factory()

    async def scenario() -> list[str]:
        backends = Backends()
        ports = [await backends.start(n) for n in ("a", "b")]
        port = free_port()
        node = await started(service_config([f"127.0.0.1:{port}"], ports))
        try:
            return [await ask_name("127.0.0.1", port) for _ in range(4)]
        finally:
            await node.stop(drain=0)
            await backends.close()

    with asyncio.Runner(loop_factory=factory) as runner:
        assert runner.run(scenario()) == ["a", "b", "a", "b"]
        assert type(runner.get_loop()).__module__.startswith(loop)


def test_http_aware_service_adds_forwarded_headers_to_every_request() -> None:
    async def scenario(backends: Backends) -> None:
        ports = [await backends.start("echo", echo=True)]
        port = free_port("::1")
        node = await started(service_config([f"[::1]:{port}"], ports, forwarded_for=True))
        requests = (b"GET /a HTTP/1.1\r\nHost: x\r\nX-Forwarded-Proto: https\r\n\r\n"
                    b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        try:
            reply = await ask("::1", port, requests)
        finally:
            await node.stop(drain=0)
        assert reply.count(b"X-Forwarded-For: ::1\r\n") == 2
        assert reply.count(b"X-Forwarded-Proto: http\r\n") == 2
        assert b"https" not in reply  # a client cannot claim TLS it did not use
        assert reply.endswith(b"\r\n\r\nhello")

    run(scenario)


def test_closed_connections_are_freed_without_the_garbage_collector() -> None:
    """Reference cycles between the two sides would leave every connection to the cyclic
    collector (memory growth and pauses under load); closing must break them."""
    import gc

    from fulcrum.proxy.tcp import ClientSide, ServerSide

    async def scenario(backends: Backends) -> None:
        ports = [await backends.start("echo", echo=True)]
        port = free_port()
        node = await started(service_config([f"127.0.0.1:{port}"], ports))
        try:
            gc.collect()
            gc.disable()
            for _ in range(50):
                assert await ask("127.0.0.1", port, b"x") == b"echo:x"
            await wait_until(lambda: node.connections == 0)

            def freed() -> bool:  # once the transports have delivered connection_lost
                return not any(isinstance(o, ClientSide | ServerSide) for o in gc.get_objects())

            await wait_until(freed, step=0.05, what="every ClientSide and ServerSide freed, the collector off")
            alive = [o for o in gc.get_objects() if isinstance(o, ClientSide | ServerSide)]
        finally:
            gc.enable()
            await node.stop(drain=0)
        assert alive == []

    run(scenario)


def test_reload_adds_and_removes_listen_addresses_and_keeps_established_connections() -> None:
    from fulcrum.config.load import load_dict

    async def scenario(backends: Backends) -> None:
        ports = [await backends.start("echo", echo=True)]
        old_port, new_port = free_port(), free_port()
        node = await started(service_config([f"127.0.0.1:{old_port}"], ports))
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", old_port)
            writer.write(b"before ")
            await wait_until(lambda: node.connections == 1)
            await node.reload(load_dict(service_config([f"127.0.0.1:{new_port}"], ports)))
            assert await ask("127.0.0.1", new_port, b"new") == b"echo:new"
            with pytest.raises(ConnectionRefusedError):
                await ask("127.0.0.1", old_port)
            writer.write(b"after")  # the connection accepted before the reload goes on
            writer.write_eof()
            assert await asyncio.wait_for(reader.read(), 5) == b"echo:before after"
            writer.close()
        finally:
            await node.stop(drain=0)

    run(scenario)


def test_reload_that_cannot_bind_changes_nothing() -> None:
    from fulcrum.config.load import load_dict
    from fulcrum.reload import ReloadError

    async def scenario(backends: Backends) -> None:
        ports = [await backends.start("a")]
        port = free_port()
        node = await started(service_config([f"127.0.0.1:{port}"], ports))
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        try:
            with pytest.raises(ReloadError, match="address already in use"):  # one error kind for every reload failure
                await node.reload(load_dict(service_config(
                    [f"127.0.0.1:{port}", f"127.0.0.1:{taken}"], ports)))
            assert await ask_name("127.0.0.1", port) == "a"
            assert list(node.listeners) == [("127.0.0.1", port)]
        finally:
            blocker.close()
            await node.stop(drain=0)

    run(scenario)


def test_every_connection_is_recorded_once_with_bytes_server_and_termination() -> None:
    from fulcrum.observe import NO_SERVER, Observation

    async def scenario(backends: Backends) -> None:
        ports = [await backends.start("a")]
        port = free_port()
        node = await started(service_config([f"127.0.0.1:{port}"], ports))
        seen: list[Observation] = []
        node.observer.sinks.append(seen.append)
        try:
            assert await ask_name("127.0.0.1", port) == "a"
            await wait_until(lambda: len(seen) == 1)
            await backends.stop("a")
            node.pools["p"].backends[0].healthy = False  # no usable server
            assert await refused("127.0.0.1", port)
            await wait_until(lambda: len(seen) == 2)
        finally:
            await node.stop(drain=0)
        ok, failed = seen
        assert (ok.kind, ok.service, ok.server, ok.termination) == ("tcp", "svc", f"127.0.0.1:{ports[0]}", "")
        assert ok.bytes_in == len(b"ping\n") and ok.bytes_out == len(b"a\n")
        assert ok.client == "127.0.0.1" and ok.client_port > 0 and ok.connect is not None
        assert (failed.server, failed.termination) == (None, NO_SERVER)
        assert node.observer.service_totals("svc").connections == 2

    run(scenario)
