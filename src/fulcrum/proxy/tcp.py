"""The TCP relay (application-proxy topology), written on asyncio.Protocol callbacks:
no streams, no task per read. One task per connection only while connecting.

Per connection: admit against the global and service limits, pick a server,
connect with a timeout, fail over to another server on a failed connect (not when
the pool is stubborn), then relay both ways with backpressure (a side whose
peer's write buffer is full stops reading) and pass half-closes through."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fulcrum.balance.base import Backend
from fulcrum.config.types import join_host_port
from fulcrum.failures import describe_error
from fulcrum.logs import throttle
from fulcrum.observe import (
    CLIENT_ABORT,
    CONNECT_FAILED,
    LIMIT,
    NO_SERVER,
    SERVER_ABORT,
    SHUTDOWN,
    TIMEOUT,
    Observation,
)
from fulcrum.proxy.context import ServiceContext
from fulcrum.proxy.resources import GATE, local_exhaustion

log = logging.getLogger("fulcrum.proxy")

# What a client may send before its server connection is up; then we stop reading.
PENDING_LIMIT = 256 * 1024
# When this process is out of descriptors, a client's connect is tried again after this long.
SHORTAGE_RETRY = 0.1


class ClientSide(asyncio.Protocol):
    """The connection a client made to a service."""

    __slots__ = ("ctx", "transport", "client_ip", "backend", "tried", "server",
                 "client_eof", "server_eof", "connecting", "closed", "connect_timer", "touched", "idle_ticks",
                 "bytes_in", "bytes_out", "rewrite", "pending", "pending_bytes",
                 "client_port", "started", "connect_started", "connect_time", "termination",
                 "served_by", "first_attempt")

    def __init__(self, ctx: ServiceContext):
        self.ctx = ctx
        self.transport: asyncio.Transport | None = None
        self.server: ServerSide | None = None
        self.backend: Backend | None = None
        self.tried: list[Backend] = []
        self.client_eof = False
        self.server_eof = False
        self.connecting: asyncio.Task[tuple[asyncio.BaseTransport, ServerSide]] | None = None
        self.closed = False
        self.connect_timer: asyncio.TimerHandle | None = None
        self.touched = True
        self.idle_ticks = 0
        self.bytes_in = 0  # from the client
        self.bytes_out = 0  # to the client
        self.rewrite: Any = None
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.client_ip: str | None = None  # read only when a scheduler, table, header or log needs it
        self.client_port = 0
        self.started = ctx.loop.time()
        self.connect_started = 0.0
        self.connect_time: float | None = None
        self.termination = ""  # why the connection ended early; "" = normally (observe.py)
        self.served_by: str | None = None  # key of the server that was connected, for the record
        self.first_attempt: float | None = None  # set when a local shortage delayed the connect

    # -- client events -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's are not asyncio.Transport subclasses
        if not self.ctx.admit():
            throttle.log(log, logging.WARNING, f"limit {self.ctx.name}",
                         "service %s: connection limit reached, refusing %s", self.ctx.name, peer_text(transport))
            self.closed = True
            transport.abort()  # type: ignore[attr-defined]  # every stream transport has abort()
            self._observe(LIMIT)
            return
        if self.ctx.pool.wants_client or self.ctx.config.forwarded_for or self.ctx.observer.wants_client:
            peer = transport.get_extra_info("peername")
            if peer:
                self.client_ip, self.client_port = peer[0], peer[1]
        self.ctx.open_connections.add(self)
        if self.ctx.config.forwarded_for:
            from fulcrum.proxy.forwarded import ForwardedInjector

            self.rewrite = ForwardedInjector(self.client_ip or "unknown", "http")
        self._connect_next()

    def client_text(self) -> str:
        """The client's address for a log line (read now if nothing needed it before)."""
        if self.client_ip is not None:
            return f"{self.client_ip}:{self.client_port}"
        return peer_text(self.transport)

    def data_received(self, data: bytes) -> None:
        self.touched = True
        self.bytes_in += len(data)
        if self.rewrite is not None:
            data = self.rewrite.feed(data)
        if self.server is not None and self.server.transport is not None:
            self.server.transport.write(data)
        else:
            # Still connecting: keep what the client sent, up to a bound. Not pausing
            # at accept saves two epoll updates per connection for the common case.
            self.pending.append(data)
            self.pending_bytes += len(data)
            if self.pending_bytes >= PENDING_LIMIT and self.transport is not None:
                self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.client_eof = True
        server = self.server
        if server is not None and server.transport is not None:
            if self.server_eof:
                self.close()
            elif server.transport.can_write_eof():
                server.transport.write_eof()
        return True  # keep our write side open: the server may still answer

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed and (exc is not None or not self.client_eof):
            self.termination = CLIENT_ABORT
        self.close()
        # Break protocol <-> transport references so plain reference counting frees
        # the connection at once instead of leaving cycles for the garbage collector.
        self.transport = None
        self.rewrite = None

    def pause_writing(self) -> None:
        if self.server is not None and self.server.transport is not None:
            self.server.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.server is not None and self.server.transport is not None:
            self.server.transport.resume_reading()

    # -- connecting to a server ----------------------------------------------------

    def _connect_next(self) -> None:
        ctx = self.ctx
        now = ctx.loop.time()
        backend = ctx.pool.pick(now, client=self.client_ip, exclude=self.tried)
        if backend is None:
            throttle.log(log, logging.WARNING, f"no server {ctx.name}", "service %s: no server available for %s",
                         ctx.name, self.client_text())
            self.termination = CONNECT_FAILED if self.tried else NO_SERVER
            self.close()
            return
        self.backend = backend
        ctx.pool.taken(backend)
        loop = ctx.loop
        # The connect runs as a task with a done-callback and a bare timer: no coroutine
        # of our own and no asyncio.timeout() per connection.
        task = loop.create_task(loop.create_connection(self._server_side, backend.address, backend.port))
        task.add_done_callback(self._connect_done)
        self.connecting = task
        self.connect_started = loop.time()
        timeout = ctx.timeouts.connect
        self.connect_timer = loop.call_later(timeout, task.cancel) if timeout else None

    def _server_side(self) -> ServerSide:
        return ServerSide(self)

    def _connect_done(self, task: asyncio.Task[Any]) -> None:
        self.connecting = None
        if self.connect_timer is not None:
            self.connect_timer.cancel()
            self.connect_timer = None
        backend = self.backend
        if self.closed or backend is None:
            return  # the client went away first; close() released the server slot
        if task.cancelled():
            self._connect_failed(backend, f"connect timeout after {self.ctx.timeouts.connect:g}s")
        elif (err := task.exception()) is not None:
            shortage = local_exhaustion(err)
            if shortage is not None:
                self._short_of_resources(backend, shortage)
            else:
                self._connect_failed(backend, describe_error(err, backend.address))

    def _short_of_resources(self, backend: Backend, reason: str) -> None:
        """Our own shortage (issue 7 item 7): not the server's fault, so no health failure,
        no blacklist, no other server. Stop accepting; this client waits and tries the same
        pick again shortly, until the connect timeout since its first attempt."""
        ctx = self.ctx
        ctx.pool.released(backend)
        self.backend = None
        GATE.exhausted(reason, f"connecting to {backend.key} for service {ctx.name}")
        if self.first_attempt is None:
            self.first_attempt = self.connect_started
        waited = ctx.loop.time() - self.first_attempt
        if ctx.timeouts.connect and waited + SHORTAGE_RETRY > ctx.timeouts.connect:
            self.termination = LIMIT
            self.close()
            return
        self.connect_timer = ctx.loop.call_later(SHORTAGE_RETRY, self._connect_next)

    def _connect_failed(self, backend: Backend, reason: str) -> None:
        ctx = self.ctx
        ctx.pool.released(backend)
        self.backend = None
        ctx.pool.connect_failed(backend, ctx.loop.time())
        ctx.passive_failure(backend, reason)
        throttle.log(log, logging.INFO, f"connect {ctx.name} {backend.key}",
                     "service %s: connect to %s failed (%s) for %s", ctx.name, backend.key, reason, self.client_text())
        if self.closed:
            return
        self.tried.append(backend)
        # bounded work per connection (issue 7 item 10): at most 1 + `retries` servers
        if ctx.pool.config.stubborn or len(self.tried) > ctx.pool.config.retries:
            self.termination = CONNECT_FAILED
            self.close()
        else:
            self._connect_next()

    def server_connected(self, server: ServerSide) -> None:
        if self.closed:
            assert server.transport is not None
            server.transport.close()
            return
        self.server = server
        assert server.transport is not None and self.transport is not None
        self.connect_time = self.ctx.loop.time() - self.connect_started
        self.served_by = self.backend.key if self.backend is not None else None
        if self.backend is not None and self.backend.failures:
            self.ctx.passive_success(self.backend)  # breaks a run of failed connects
        if self.pending:
            server.transport.writelines(self.pending)
            self.pending.clear()
            if self.pending_bytes >= PENDING_LIMIT:
                self.transport.resume_reading()
            self.pending_bytes = 0
        if self.client_eof:
            server.transport.write_eof()

    # -- server events (called by ServerSide) ----------------------------------------

    def server_data(self, data: bytes) -> None:
        self.touched = True
        self.bytes_out += len(data)
        assert self.transport is not None
        self.transport.write(data)

    def server_eof_received(self) -> None:
        self.server_eof = True
        assert self.transport is not None
        if self.client_eof:
            self.close()
        elif self.transport.can_write_eof():
            self.transport.write_eof()

    # -- teardown ----------------------------------------------------------------

    def close(self) -> None:
        """Close both sides once; buffered data is flushed by transport.close()."""
        if self.closed:
            return
        self.closed = True
        ctx = self.ctx
        ctx.open_connections.discard(self)
        ctx.release()
        if self.connecting is not None:
            self.connecting.cancel()
        if self.connect_timer is not None:
            self.connect_timer.cancel()
        if self.backend is not None:
            ctx.pool.released(self.backend, self.bytes_in + self.bytes_out)
            self.backend = None
        server, self.server = self.server, None
        if server is not None and server.transport is not None:
            server.transport.close()
        if self.transport is not None:
            self.transport.close()
        self._observe(self.termination)

    def _observe(self, termination: str) -> None:
        ctx = self.ctx
        observer = ctx.observer
        if not observer.sinks:  # only the totals read it: counted without a record
            observer.tally(ctx.name, ctx.pool.name, self.served_by, False, 0, self.bytes_in, self.bytes_out,
                           termination)
            return
        observer.record(Observation(
            kind="tcp", service=ctx.name, client=self.client_ip or "-", client_port=self.client_port,
            pool=ctx.pool.name, server=self.served_by, bytes_in=self.bytes_in,
            bytes_out=self.bytes_out, connect=self.connect_time,
            total=ctx.loop.time() - self.started, retries=len(self.tried), termination=termination))

    def abort(self, reason: str = SHUTDOWN) -> None:
        if not self.closed and not self.termination:
            self.termination = reason
        for side in (self.server.transport if self.server else None, self.transport):
            if side is not None:
                side.abort()
        self.close()


class ServerSide(asyncio.Protocol):
    """Our connection to the chosen server; forwards everything to its ClientSide."""

    __slots__ = ("client", "transport")

    def __init__(self, client: ClientSide):
        self.client = client
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's are not asyncio.Transport subclasses
        self.client.server_connected(self)

    def data_received(self, data: bytes) -> None:
        self.client.server_data(data)

    def eof_received(self) -> bool:
        self.client.server_eof_received()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        client, self.client = self.client, None  # type: ignore[assignment]
        if not client.closed and (exc is not None or not client.server_eof):
            client.termination = SERVER_ABORT
        client.close()
        self.transport = None

    def pause_writing(self) -> None:
        client = self.client
        if client is not None and client.transport is not None:
            client.transport.pause_reading()

    def resume_writing(self) -> None:
        client = self.client
        if client is not None and client.transport is not None and client.server is self:
            client.transport.resume_reading()


def peer_text(transport: Any) -> str:
    """`host:port` of a transport's peer, for log lines; "unknown" when it is gone."""
    peer = transport.get_extra_info("peername") if transport is not None else None
    if not peer:
        return "unknown"
    return join_host_port(peer[0], peer[1])


def sweep_idle(ctx: ServiceContext, ticks_allowed: int) -> None:
    """Called every idle_timeout/4: close connections with no traffic for that many ticks.

    A flag set per read is cheaper than re-arming a timer per chunk."""
    for item in list(ctx.open_connections):
        relay: Any = item  # a tcp ClientSide or an http HttpConnection: same attributes
        if relay.touched:
            relay.touched = False
            relay.idle_ticks = 0
        else:
            relay.idle_ticks += 1
            if relay.idle_ticks >= ticks_allowed:
                log.info("service %s: closing idle connection from %s", ctx.name,
                         relay.client_ip or peer_text(relay.transport))
                relay.abort(TIMEOUT)
