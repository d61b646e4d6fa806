"""The health monitor against real loopback backends: a server that stops is
marked down, one that comes back is marked up, with one log line each."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fulcrum.balance.pool import PoolRuntime
from fulcrum.config.model import HealthCheck, Pool
from fulcrum.health.monitor import HealthMonitor

# Both event loops, and the bounded runner, as for the probes.
from tests.integration.test_health_probes import event_loop_kind, run  # noqa: F401
from tests.support import wait_until

LOOPBACK = "127.0.0.1"


class HttpBackend:
    """A loopback HTTP server that can be stopped and started on the same port
    and told which status to answer."""

    def __init__(self) -> None:
        self.status = "200 OK"
        self.server: asyncio.Server | None = None
        self.port = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(f"HTTP/1.1 {self.status}\r\nContent-Length: 2\r\n\r\nok".encode())
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, LOOPBACK, self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@contextlib.asynccontextmanager
async def monitored(kind: str, **options: Any) -> AsyncIterator[tuple[HttpBackend, PoolRuntime, HealthMonitor]]:
    """A running backend, a one-server pool "web" on it with a 100ms `kind`
    check, and a started monitor; all stopped on the way out."""
    backend = HttpBackend()
    await backend.start()
    check = HealthCheck(kind=kind, interval="100ms", timeout="100ms", rise=2, fall=3)
    web = PoolRuntime("web", Pool(servers=[f"{LOOPBACK}:{backend.port}"], health=check))
    monitor = HealthMonitor({"web": web}, **options)
    monitor.start()
    try:
        yield backend, web, monitor
    finally:
        await monitor.stop()
        await backend.stop()


def messages(caplog: Any) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "fulcrum.health"]


def test_tcp_monitor_marks_a_stopped_backend_down_and_a_returning_one_up(caplog):
    caplog.set_level(logging.INFO, logger="fulcrum.health")

    async def scenario() -> str:
        async with monitored("tcp", initial="fully-up") as (backend, web, monitor):
            server = web.backends[0]
            await wait_until(lambda: monitor.status()["web"][server.key]["last_check"] is not None)
            assert server.healthy and messages(caplog) == []
            await backend.stop()
            await wait_until(lambda: not server.healthy)
            await backend.start()
            await wait_until(lambda: server.healthy)
            status = monitor.status()["web"][server.key]
            assert status["up"] and status["last_reason"] == "connect ok"
            return server.key

    key = run(scenario())
    assert messages(caplog) == [
        f"pool web server {key} is DOWN (connect refused, 3/3 failures)",
        f"pool web server {key} is UP (connect ok, 2/2 successes)",
    ]


def test_http_monitor_follows_the_status_the_backend_answers(caplog):
    caplog.set_level(logging.INFO, logger="fulcrum.health")

    async def scenario() -> str:
        async with monitored("http") as (backend, web, _):
            server = web.backends[0]
            backend.status = "500 Internal Server Error"
            await wait_until(lambda: not server.healthy)
            assert web.pick(now=0.0) is None  # the pool no longer offers it
            backend.status = "200 OK"
            await wait_until(lambda: server.healthy)
            assert web.pick(now=0.0) is server
            return server.key

    key = run(scenario())
    # The default initial state is up on probation: the first failed check takes it out.
    assert messages(caplog) == [
        f"pool web server {key} is DOWN (HTTP 500, 1/3 failures, on probation)",
        f"pool web server {key} is UP (HTTP 200, 2/2 successes)",
    ]
