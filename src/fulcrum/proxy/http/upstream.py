"""Connections to servers: one response parser each, kept alive in a small idle pool per server.

An Upstream belongs to at most one exchange at a time; between exchanges it waits in
`IdlePool`. The server may close an idle connection at any moment (Apache after 5 s): that
race is why a request that failed on a *reused* connection before any response byte is
retried once on a fresh one (see dispatch.py)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import httptools

from fulcrum.balance.base import Backend

if TYPE_CHECKING:
    from fulcrum.proxy.http.exchange import Exchange

IDLE_PER_SERVER = 64  # idle keep-alive connections kept per server
IDLE_SECONDS = 4.0
MAX_RESPONSE_FIELDS = 500
MAX_RESPONSE_HEAD = 1024 * 1024  # a broken server must not grow us without bound  # below Apache's 5 s KeepAliveTimeout, so we rarely reuse a dying one


class Upstream(asyncio.Protocol):
    __slots__ = ("backend", "transport", "parser", "exchange", "reused", "idle_since",
                 "closed", "tunnel", "got_bytes", "pool", "owner", "reason", "headers", "head_fed",
                 "feeding", "parked", "stale")

    def __init__(self, backend: Backend, pool: IdlePool, owner: int = 0):
        self.backend = backend
        self.pool = pool
        self.owner = owner  # nonzero: private to one client connection (it carries a PROXY header)
        self.transport: Any = None
        self.parser: Any = httptools.HttpResponseParser(self)
        self.exchange: Exchange | None = None
        self.reused = False
        self.idle_since = 0.0
        self.closed = False
        self.tunnel = False
        self.got_bytes = False  # any response byte for the current exchange
        self.reason = b""  # of the response being parsed
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_fed = 0
        # A response that completes inside a read is not pooled until the whole read has been
        # parsed ("parked"): a byte after it ("stale") means the server is out of step with
        # us, and the connection is closed, never given to the next request (issue 7 item 3).
        self.feeding = False
        self.parked = False
        self.stale = False

    # -- asyncio callbacks ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        ex = self.exchange
        if ex is None:  # a server must not talk between responses (RFC 9112 §9.3 hints it may close)
            self.close()
            return
        if not self.got_bytes:
            self.got_bytes = True
            ex.t_response = ex.conn.ctx.loop.time()
        if self.tunnel:
            ex.conn.tunnel_from_server(data)
            return
        conn = ex.conn
        conn.server_activity(ex)
        conn.cork()
        self.feeding = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            rest = data[upgrade.args[0]:]
            if rest:
                conn.tunnel_from_server(rest)
        except httptools.HttpParserError as err:
            if self.exchange is not None:
                conn.server_failed(self.exchange, f"bad response: {err}")
        else:
            if self.head_fed:  # httptools buffers an incomplete field itself: bound the head
                self.head_fed += len(data)
                if self.head_fed > MAX_RESPONSE_HEAD and self.exchange is not None:
                    conn.server_failed(self.exchange, "response head too large")
        finally:
            self.feeding = False
            if self.parked:
                self.parked = False
                if self.stale:
                    self.close()
                else:
                    self.pool.put(self, self.idle_since)
            conn.uncork()

    def eof_received(self) -> bool:
        ex = self.exchange
        if ex is not None:
            if self.tunnel:
                ex.conn.tunnel_eof()
                return True
            ex.conn.server_eof(ex)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.parser = None  # parser <-> protocol is a cycle; no more data comes now
        self.pool.forget(self)
        ex = self.exchange
        if ex is not None:
            self.exchange = None
            if self.tunnel:
                ex.conn.close()  # what the server sent last still reaches the client
            else:
                ex.conn.server_eof(ex, lost=True)

    def pause_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.conn.block_reading("server-full")

    def resume_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.conn.unblock_reading("server-full")

    # -- response parser callbacks (httptools) ------------------------------------------

    def on_message_begin(self) -> None:
        if self.exchange is None:
            # a response nobody asked for (after a complete one, in the same read): stop
            # parsing it, and never reuse this connection (issue 7 item 3, RFC 9112 §9.3)
            self.stale = True
            raise ValueError("response bytes after a complete response")
        self.reason = b""
        self.headers = []
        self.head_fed = 1  # counting: the head is incomplete

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self.headers
        headers.append((name, value))
        if len(headers) > MAX_RESPONSE_FIELDS:
            raise ValueError("too many response header fields")

    def on_headers_complete(self) -> None:
        self.head_fed = 0
        ex = self.exchange
        if ex is not None:
            ex.conn.response_head(ex, self.parser.get_status_code(), self.reason or b"-", self.headers)

    def on_body(self, body: bytes) -> None:
        if self.exchange is not None and body:
            self.exchange.conn.response_body(self.exchange, body)

    def on_message_complete(self) -> None:
        if self.exchange is not None:
            self.exchange.conn.response_complete(self.exchange)

    # -- ownership ---------------------------------------------------------------------

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.exchange = None
            self.pool.forget(self)
            if self.transport is not None:
                self.transport.close()

    def abort(self) -> None:
        self.closed = True
        self.exchange = None
        self.pool.forget(self)
        if self.transport is not None:
            self.transport.abort()


class IdlePool:
    """Idle keep-alive connections per server key (and owner, for private ones), most
    recently used first out."""

    def __init__(self) -> None:
        self.idle: dict[tuple[str, int], list[Upstream]] = {}
        self.sweeper: asyncio.TimerHandle | None = None

    def get(self, backend: Backend, now: float, owner: int = 0) -> Upstream | None:
        stack = self.idle.get((backend.key, owner))
        while stack:
            up = stack.pop()
            if up.closed or up.transport is None or up.transport.is_closing():
                continue
            if now - up.idle_since > IDLE_SECONDS:
                up.close()
                continue
            up.reused = True
            return up
        return None

    def put(self, up: Upstream, now: float) -> None:
        if up.closed or up.transport is None or up.transport.is_closing():
            return
        up.exchange = None
        up.got_bytes = False
        up.idle_since = now
        if up.feeding:  # its read is still being parsed: pooled after it, if nothing followed
            up.parked = True
            return
        stack = self.idle.setdefault((up.backend.key, up.owner), [])
        stack.append(up)
        if len(stack) > IDLE_PER_SERVER:
            stack.pop(0).close()
        if self.sweeper is None:
            self.sweeper = asyncio.get_running_loop().call_later(IDLE_SECONDS, self.sweep)

    def sweep(self) -> None:
        """Close connections idle too long, so a pool nobody draws from (an old
        configuration's, after a reload) does not hold server connections open."""
        self.sweeper = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        for stack in list(self.idle.values()):
            for up in [u for u in stack if now - u.idle_since > IDLE_SECONDS]:
                up.close()
        if any(self.idle.values()):
            self.sweeper = loop.call_later(IDLE_SECONDS, self.sweep)

    def forget(self, up: Upstream) -> None:
        stack = self.idle.get((up.backend.key, up.owner))
        if stack and up in stack:
            stack.remove(up)
            if not stack and up.owner:
                del self.idle[(up.backend.key, up.owner)]

    def drop_owner(self, owner: int) -> None:
        """A client connection ended: its private server connections go too."""
        for key in [k for k in self.idle if k[1] == owner]:
            for up in list(self.idle.get(key, ())):
                up.close()
