"""Listening sockets. Bound once and kept across reloads: a reload swaps the
service context behind a socket, it never closes the socket.

IPv6 wildcard listeners are IPV6_V6ONLY so `0.0.0.0:80` and `[::]:80` can be
listed side by side; IP_FREEBIND lets a service bind a VIP this node does not
own yet, so a VRRP takeover needs no restart."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable

from fulcrum.config.model import Endpoint
from fulcrum.proxy.resources import GATE, watch_accept_errors

IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)


class ListenError(Exception):
    """A listen address cannot be bound: one clear line for the operator."""

    exit_status = 1


def bind(endpoint: Endpoint, backlog: int, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in endpoint.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
        sock.bind((endpoint.host, endpoint.port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as err:
        sock.close()
        reason = {
            errno.EADDRINUSE: "address already in use",
            errno.EACCES: "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)",
            errno.EADDRNOTAVAIL: "address not available on this host",
        }.get(err.errno or 0, err.strerror or str(err))
        raise ListenError(f"cannot listen on {endpoint}: {reason}") from err
    return sock


class Listener:
    """One bound socket serving whichever protocol factory is current.

    The event loop serves a duplicate of the socket, so accepting can be paused (the
    loop's server closed; the bound socket stays open and the kernel keeps queueing
    clients in its backlog) and resumed with a fresh duplicate: proxy/resources.py pauses
    every listener when the process runs out of descriptors."""

    def __init__(self, endpoint: Endpoint, sock: socket.socket):
        self.endpoint = endpoint
        self.sock = sock
        self.server: asyncio.Server | None = None
        self.factory: Callable[[], asyncio.Protocol] | None = None
        self.backlog = 511
        self.paused = False
        self.closed = False

    async def start(self, factory: Callable[[], asyncio.Protocol], backlog: int) -> None:
        self.factory, self.backlog = factory, backlog
        watch_accept_errors(asyncio.get_running_loop())
        self.server = await self._serve(self.sock.dup())
        GATE.register(self)

    async def _serve(self, sock: socket.socket) -> asyncio.Server:
        assert self.factory is not None
        loop = asyncio.get_running_loop()
        # an http service with TLS hands its context over with its factory (proxy/http/tls.py)
        tls = {k: getattr(self.factory, k) for k in ("ssl_context", "ssl_handshake_timeout")
               if hasattr(self.factory, k)}
        try:
            return await loop.create_server(self._make_protocol, sock=sock, backlog=self.backlog,
                                            ssl=tls.get("ssl_context"),
                                            ssl_handshake_timeout=tls.get("ssl_handshake_timeout"))
        except BaseException:
            sock.close()
            raise

    def _make_protocol(self) -> asyncio.Protocol:
        assert self.factory is not None
        return self.factory()

    def swap(self, factory: Callable[[], asyncio.Protocol]) -> None:
        self.factory = factory

    def pause_accepting(self) -> None:
        """Stop accepting; clients queue in the kernel's backlog meanwhile."""
        if self.server is not None and not self.paused:
            self.paused = True
            self.server.close()  # closes the loop's duplicate only; established connections stay
            self.server = None

    def resume_accepting(self) -> bool:
        """Accept again; False when even the duplicate descriptor cannot be had yet."""
        if not self.paused or self.closed:
            return True
        try:
            sock = self.sock.dup()
        except OSError:
            return False
        self.paused = False
        task = asyncio.get_running_loop().create_task(self._serve(sock))
        task.add_done_callback(self._resumed)
        return True

    def _resumed(self, task: asyncio.Task[asyncio.Server]) -> None:
        if task.cancelled() or task.exception() is not None:
            self.paused = True  # try again at the gate's next attempt
            return
        self.server = task.result()
        if self.closed:
            self.server.close()

    def close(self) -> None:
        self.closed = True
        GATE.unregister(self)
        if self.server is not None:
            self.server.close()
            self.server = None
        self.sock.close()
