"""`fulcrum demo`: three tiny HTTP backends on loopback and fulcrum in front of them,
from the built-in example configuration. Shows the spread, kills a backend, shows
traffic routed around it, then serves until Ctrl-C."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import signal
import tomllib
from importlib import resources

from fulcrum.config.load import load_dict
from fulcrum.config.model import Config
from fulcrum.logs import setup_logging
from fulcrum.node import Node
from fulcrum.proxy.listener import ListenError
from fulcrum.proxy.loop import loop_factory

BURST = 40


class DemoBackend(asyncio.Protocol):
    """Answers every HTTP request with its own name (keep-alive aware enough for curl)."""

    def __init__(self, name: str):
        self.name = name
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            forwarded, close = b"-", head.endswith(b"HTTP/1.0") or b" HTTP/1.0\r\n" in head
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"x-forwarded-for":
                    forwarded = value.strip()
                elif name.strip().lower() == b"connection" and value.strip().lower() == b"close":
                    close = True
            body = f"hello from {self.name} (X-Forwarded-For: {forwarded.decode()})\n".encode()
            self.transport.write(  # type: ignore[attr-defined]
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                + f"Content-Length: {len(body)}\r\nX-Backend: {self.name}\r\n\r\n".encode() + body)
            if close:
                self.transport.close()
                return


def demo_config(listen_port: int, backend_port: int) -> Config:
    text = resources.files("fulcrum.examples").joinpath("demo.toml").read_text()
    data = tomllib.loads(text)
    data["services"]["demo"]["listen"] = [f"127.0.0.1:{listen_port}", f"[::1]:{listen_port}"]
    for i, server in enumerate(data["pools"]["demo"]["servers"]):
        server["port"] = backend_port + i
    return load_dict(data)


async def fetch(host: str, port: int) -> str | None:
    """One HTTP request through fulcrum; returns the X-Backend that answered."""
    try:
        async with asyncio.timeout(2):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"GET / HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n")
            response = await reader.read()
            writer.close()
    except (OSError, TimeoutError):
        return None
    for line in response.split(b"\r\n"):
        if line.startswith(b"X-Backend:"):
            return line.split(b":", 1)[1].strip().decode()
    return None


async def burst(port: int, title: str) -> None:
    results = [await fetch("127.0.0.1" if i % 2 == 0 else "::1", port) for i in range(BURST)]
    spread = collections.Counter(r or "FAILED" for r in results)
    print(f"\n{title}: {BURST} requests over 127.0.0.1 and [::1]")
    for name, count in sorted(spread.items()):
        print(f"  {name:10} {count:3} {'#' * count}")


async def _demo(listen_port: int, backend_port: int, wait: bool) -> int:
    config = demo_config(listen_port, backend_port)
    loop = asyncio.get_running_loop()
    backends = {}
    for i, server in enumerate(config.pools["demo"].servers):
        name = f"backend-{i + 1}"
        try:
            backends[name] = await loop.create_server(functools.partial(DemoBackend, name), server.address, server.port)
        except OSError as err:
            print(f"fulcrum demo: cannot start {name} on {server.address}:{server.port}: {err.strerror}"
                  " (choose other ports with --backend-port)")
            return 1
    node = Node(config)
    try:
        node.bind_all()
    except ListenError as err:
        print(f"fulcrum: {err}")
        return 1
    await node.start()
    print("fulcrum demo: backends backend-1..3 on 127.0.0.1:"
          f"{backend_port}-{backend_port + 2} (weights 1:1:2, scheduler wrr)")
    print(f"fulcrum listening on 127.0.0.1:{listen_port} and [::1]:{listen_port}")
    await burst(listen_port, "All backends up")

    print("\nStopping backend-3 (the weight-2 server) ...")
    backends["backend-3"].close()
    await backends["backend-3"].wait_closed()
    await burst(listen_port, "backend-3 down (failed connects fail over at once)")
    await asyncio.sleep(1.5)  # let the health check notice
    pool = node.pools["demo"]
    print("\nhealth: " + ", ".join(f"{b.key}={'up' if b.healthy else 'DOWN'}" for b in pool.backends))
    if wait:
        print(f"\nTry it:  curl http://127.0.0.1:{listen_port}/   curl -g 'http://[::1]:{listen_port}/'")
        print("Press Ctrl-C to stop.")
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
    await node.stop(drain=1.0)
    for backend in backends.values():
        backend.close()
    return 0


def run_demo(listen_port: int, backend_port: int, wait: bool = True) -> int:
    config = demo_config(listen_port, backend_port)
    setup_logging(config.log)
    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(_demo(listen_port, backend_port, wait))
    return 0
