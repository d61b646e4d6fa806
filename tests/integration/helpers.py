"""Real sockets on loopback: small backends, a client, and node configurations (the waits,
ports and processes every test shares are in tests/support.py)."""

from __future__ import annotations

import asyncio
import collections
from typing import Any

from fulcrum.config.load import load_dict
from fulcrum.node import Node
from tests.support import free_port


class NameBackend(asyncio.Protocol):
    """Reads until the client half-closes (or a newline), answers its name, closes.

    With `echo`, answers name + everything received, after the client's EOF."""

    def __init__(self, name: str, stats: collections.Counter[str], echo: bool = False):
        self.name, self.stats, self.echo = name, stats, echo
        self.received = b""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.stats[self.name] += 1

    def data_received(self, data: bytes) -> None:
        self.received += data
        if not self.echo and b"\n" in self.received:
            self.transport.write(f"{self.name}\n".encode())
            self.transport.close()

    def eof_received(self) -> bool:
        if self.echo:
            self.transport.write(f"{self.name}:".encode() + self.received)
        self.transport.close()
        return False


class Backends:
    """Named backends on loopback ports; start, stop and count connections per name."""

    def __init__(self) -> None:
        self.servers: dict[str, asyncio.Server] = {}
        self.ports: dict[str, int] = {}
        self.hits: collections.Counter[str] = collections.Counter()

    async def start(self, name: str, port: int | None = None, echo: bool = False,
                    host: str = "127.0.0.1") -> int:
        port = port or self.ports.get(name) or free_port(host)
        loop = asyncio.get_running_loop()
        self.servers[name] = await loop.create_server(
            lambda: NameBackend(name, self.hits, echo), host, port, reuse_address=True)
        self.ports[name] = port
        return port

    async def stop(self, name: str) -> None:
        server = self.servers.pop(name)
        server.close()
        await server.wait_closed()

    async def close(self) -> None:
        for name in list(self.servers):
            await self.stop(name)


async def ask(host: str, port: int, payload: bytes = b"ping\n", timeout: float = 5.0) -> bytes:
    """Connect, send, half-close, read to EOF. Raises on failure or timeout."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(payload)
            writer.write_eof()
            return await reader.read()
        finally:
            writer.close()


async def refused(host: str, port: int, payload: bytes = b"ping\n") -> bool:
    """True when the connection is closed (or reset) without any answer."""
    try:
        return await ask(host, port, payload) == b""
    except ConnectionRefusedError:
        raise  # nobody listening is a different failure
    except (ConnectionResetError, BrokenPipeError, OSError) as err:
        # reset, or closed before our write: both mean "refused without an answer"
        return not isinstance(err, TimeoutError)


async def ask_name(host: str, port: int) -> str:
    return (await ask(host, port)).decode().strip()


def make_node(data: dict[str, Any]) -> Node:
    return Node(load_dict(data))


def pool_config(ports: list[int], **extra: Any) -> dict[str, Any]:
    pool: dict[str, Any] = {"servers": [f"127.0.0.1:{p}" for p in ports], "health": {"kind": "none"}}
    pool.update(extra)
    return pool


def service_config(listen: list[str], ports: list[int], pool: dict[str, Any] | None = None,
                   **service: Any) -> dict[str, Any]:
    return {
        "services": {"svc": {"listen": listen, "pool": "p", **service}},
        "pools": {"p": pool if pool is not None else pool_config(ports)},
        "log": {"level": "debug"},
    }
