"""The client side's asyncio shell: a thin protocol around the sans-I/O core
(core/connection.py). It feeds the core what the socket says — bytes, FIN, loss, flow
control, the time — and after each call writes what the core produced and carries out its
actions (core/actions.py): connect to a server, close or pause a side, half-close a tunnel.
Every decision about HTTP is the core's; this module only does I/O.

Writes are gathered per event: a response head, body and chunk end produced by one read go
out in one send (and the request head and body likewise to the server)."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import socket
import struct
import termios
from typing import Any

from fulcrum.balance.base import Backend
from fulcrum.logs import throttle
from fulcrum.observe import SHUTDOWN
from fulcrum.proxy.context import ServiceContext
from fulcrum.proxy.http import proxyproto
from fulcrum.proxy.http.core import actions as act
from fulcrum.proxy.http.core.connection import ClientCore
from fulcrum.proxy.http.core.server import ServerSide
from fulcrum.proxy.http.exchange import Exchange
from fulcrum.proxy.http.service import HttpService
from fulcrum.proxy.http.upstream import Upstream
from fulcrum.proxy.resources import GATE, local_exhaustion

log = logging.getLogger("fulcrum.http")

WRITE_HIGH_WATER = 256 * 1024
WRITE_LOW_WATER = 64 * 1024
_LINGER_ZERO = struct.pack("ii", 1, 0)


def kernel_unsent(transport: Any) -> int:
    """Bytes still in the kernel's send queue of the transport's socket, not yet acknowledged
    by the peer (SIOCOUTQ, which Linux numbers as TIOCOUTQ); 0 when it cannot be told."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return 0
    try:
        return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0])
    except (OSError, ValueError):
        return 0


def reset_on_close(transport: Any) -> None:
    """Make closing the connection send a TCP reset, not a FIN. A cut response must look cut:
    after a FIN, a client reading a body delimited by the close (an HTTP/1.0 client), or one
    not checking Content-Length, would take a truncated body for a whole one (issue 7 item 9;
    RFC 9112 §8: an incomplete message must be seen as incomplete)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
        except OSError:
            pass  # already closed: nothing to reset


class HttpConnection(asyncio.Protocol):
    """A client connection to an http service."""

    __slots__ = ("svc", "ctx", "core", "transport", "closed", "touched", "idle_ticks", "client_ip")

    def __init__(self, svc: HttpService):
        self.svc = svc
        self.ctx: ServiceContext = svc.ctx
        self.core: ClientCore | None = None
        self.transport: Any = None
        self.closed = False
        self.touched = True  # traffic since the node's last idle sweep (tcp.sweep_idle)
        self.idle_ticks = 0
        self.client_ip = "unknown"

    # -- events from the socket, fed to the core ----------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        ctx = self.ctx
        if not ctx.admit():
            from fulcrum.proxy.tcp import peer_text

            throttle.log(log, logging.WARNING, f"limit {ctx.name}",
                         "service %s: connection limit reached, refusing %s", ctx.name, peer_text(transport))
            self.closed = True
            self.transport.abort()
            return
        ctx.open_connections.add(self)
        svc = self.svc
        svc.watch(self)
        peer = transport.get_extra_info("peername")
        client = (peer[0], peer[1]) if peer else None
        if client is not None:
            self.client_ip = client[0]
        trusted = bool(svc.trusted_proxies) and client is not None and proxyproto.trusted(
            client[0], svc.trusted_proxies)  # a trusted balancer in front must send a PROXY header
        self.core = ClientCore(svc, ctx.loop.time(), client, expect_proxy_header=trusted)
        self.core.io = self
        transport.set_write_buffer_limits(WRITE_HIGH_WATER, WRITE_LOW_WATER)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.touched = True
        core = self.core
        if core is not None:
            core.client_data(data, self.ctx.loop.time())
            self.run()

    def eof_received(self) -> bool:
        core = self.core
        if core is not None:
            core.client_eof(self.ctx.loop.time())
            self.run()
        # half-open: what is due is still written; the core closes when done. TLS (tlsside.py)
        # cannot half-close: asyncio would ignore True there and warn on stderr.
        return not self.svc.tls

    def connection_lost(self, exc: Exception | None) -> None:
        core = self.core
        if core is not None:
            core.client_lost()
            self.run()
            core.parser = None  # parser <-> core is a cycle; no more data comes now
            core.io = None
        self._closed()
        self.transport = None

    def pause_writing(self) -> None:
        if self.core is not None:
            self.core.client_write_paused()
            self.run()

    def resume_writing(self) -> None:
        if self.core is not None:
            self.core.client_write_resumed(self.ctx.loop.time())
            self.run()

    def check_deadlines(self, now: float) -> None:
        """Called by the service's sweep: the core's timers are values, compared here."""
        core = self.core
        if core is not None and (core.timer or core.response_at):
            if core.response_at and core.queue and core.queue[0].unsent != 0:
                side = core.queue[0].side
                up = side.io if side is not None else None
                if up is not None and up.transport is not None:
                    transport = up.transport
                    core.request_progress(transport.get_write_buffer_size() + kernel_unsent(transport), now)
            core.tick(now)
            self.run()

    @property
    def write_paused(self) -> bool:
        """The client is not taking the response as fast as it comes (flow control)."""
        return self.core is not None and self.core.write_paused

    # -- what the core asked for ----------------------------------------------------------

    def run(self) -> None:
        core = self.core
        assert core is not None
        out = core.to_client
        if out:
            core.to_client = []
            if self.transport is not None and not self.closed:
                self.transport.write(b"".join(out) if len(out) > 1 else out[0])
        dirty = core.dirty
        if dirty:
            core.dirty = []
            for side in dirty:
                if side.out:
                    data = b"".join(side.out) if len(side.out) > 1 else side.out[0]
                    side.out.clear()
                    if side.io is not None:
                        side.io.write(data)
        actions = core.actions
        if actions:
            core.actions = []
            for action in actions:
                self._carry_out(action)

    def _carry_out(self, action: tuple[Any, ...]) -> None:
        kind = action[0]
        if kind == act.CONNECT:
            ex, backend, owner = action[1], action[2], action[3]
            ex.pending = self.ctx.loop.create_task(self._connect(ex, backend, owner))
        elif kind == act.CLOSE_SERVER:
            up: Upstream | None = action[1].io
            if up is not None:
                up.abort() if action[2] else up.close()
        elif kind == act.PAUSE_SERVER or kind == act.RESUME_SERVER:
            up = action[1].io
            if up is not None and up.transport is not None and not up.closed:
                if kind == act.PAUSE_SERVER:
                    up.transport.pause_reading()
                else:
                    up.transport.resume_reading()
        elif kind == act.PAUSE_CLIENT:
            if self.transport is not None and not self.closed:
                self.transport.pause_reading()
        elif kind == act.RESUME_CLIENT:
            if self.transport is not None and not self.closed:
                self.transport.resume_reading()
        elif kind == act.CLOSE_CLIENT:
            self._closed()
            if self.transport is not None:
                if action[1]:
                    reset_on_close(self.transport)
                    self.transport.abort()
                else:
                    self.transport.close()
        elif kind == act.CANCEL_CONNECT:
            handle = action[1]
            if isinstance(handle, asyncio.Task | asyncio.TimerHandle):
                handle.cancel()
        elif kind == act.RETRY_CONNECT:
            ex = action[1]
            ex.pending = self.ctx.loop.call_later(action[2], self._retry_connect, ex)
        elif kind == act.EOF_SERVER:
            up = action[1].io
            if up is not None and up.transport is not None and up.transport.can_write_eof():
                up.transport.write_eof()
        elif kind == act.EOF_CLIENT:
            if self.transport is not None and self.transport.can_write_eof():
                self.transport.write_eof()

    async def _connect(self, ex: Exchange, backend: Backend, owner: int) -> None:
        loop = self.ctx.loop
        svc = self.svc
        pool = ex.pool
        assert pool is not None
        tls = svc.client_tls(pool)
        name = (pool.config.tls_server_name or backend.address) if tls is not None else None
        started = loop.time()
        try:
            async with asyncio.timeout(self.ctx.timeouts.connect or None):
                _, up = await loop.create_connection(
                    lambda: Upstream(ServerSide(backend, owner), svc), backend.address, backend.port,
                    ssl=tls, server_hostname=name)
        except (OSError, TimeoutError) as err:  # ssl.SSLError (a failed verification) is an OSError
            core = self.core
            shortage = local_exhaustion(err)
            if shortage is not None:  # ours, not the server's (issue 7 item 7): accepting pauses
                GATE.exhausted(shortage, f"connecting to {backend.key} for service {self.ctx.name}")
                if core is not None:
                    core.connect_short(ex, backend, loop.time(), self.ctx.timeouts.connect)
                    if core.io is not None:
                        self.run()
                return
            reason = "connect timeout" if isinstance(err, TimeoutError) else (err.strerror or str(err))
            if self.ctx.health is not None:
                self.ctx.health.passive_failure(pool.name, backend, reason)
            throttle.log(log, logging.INFO, f"connect {self.ctx.name} {backend.key}",  # one per request in an outage
                         "service %s: connect to %s failed (%s) for %s", self.ctx.name, backend.key, reason,
                         self.client_ip)
            if core is not None:
                core.connect_failed(ex, backend, reason, loop.time())
                if core.io is not None:
                    self.run()
            return
        core = self.core
        now = loop.time()
        if core is None or core.io is None:
            up.close()
            return
        if owner:  # private: it starts with a PROXY header describing this client (HAProxy's spec)
            encode = proxyproto.encode_v1 if pool.config.proxy_protocol == "v1" else proxyproto.encode_v2
            local = core.local_addr
            if local is None:
                sock = self.transport.get_extra_info("sockname")
                local = core.local_addr = (sock[0], sock[1])
            up.transport.write(encode(core.client_addr, local))
        if not core.server_connected(ex, up.side, now, now - started):
            up.close()
        self.run()

    def _retry_connect(self, ex: Exchange) -> None:
        core = self.core
        if core is not None and core.io is not None:
            core.retry_connect(ex, self.ctx.loop.time())
            self.run()

    # -- teardown -------------------------------------------------------------------------

    def _closed(self) -> None:
        if not self.closed:
            self.closed = True
            self.ctx.open_connections.discard(self)
            self.ctx.release()
            self.svc.unwatch(self)

    def shutdown(self) -> None:
        """The node is stopping (SIGTERM): idle connections close now, busy ones after their
        last response, which says Connection: close (issue 7 item 8)."""
        if self.core is not None and not self.closed:
            self.core.drain()
            self.run()

    def abort(self, reason: str = SHUTDOWN) -> None:
        """Cut the connection; `reason` is the termination word of its records (observe.py)."""
        core = self.core
        if core is not None and not self.closed:
            for ex in core.queue:
                if not ex.termination:
                    ex.termination = reason
            core.client_lost()
            self.run()
        elif self.transport is not None:
            self.transport.abort()
