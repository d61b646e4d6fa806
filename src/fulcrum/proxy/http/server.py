"""The HTTP/1.1 reverse proxy, on asyncio.Protocol callbacks (no streams, no task per request).

One `HttpConnection` per client connection parses requests with httptools (llhttp, strict by
default: it rejects CL+TE, bad Content-Length, bad chunk sizes, obs-fold, bare LF, whitespace
before the colon, NUL/CR in values). On top of that this module enforces the limits and rules of
RFC 9112 that llhttp leaves to us: HTTP version, Host, request-line and header size/count,
and the header/body/keep-alive/response timeouts.

Requests are answered strictly in order (pipelining, RFC 9112 §9.3.2): `queue` holds the
exchanges; only the first talks to a server, later ones buffer (and the client stops being
read while any is queued, so buffering is bounded by one read). Any rejected input is answered
with its status and the connection is closed: after a framing error the client's byte stream
can no longer be trusted, and the server connection is never given a partial request.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httptools

from fulcrum.balance.base import Backend
from fulcrum.balance.pool import PoolRuntime
from fulcrum.proxy.context import ServiceContext
from fulcrum.proxy.http import headers as hdr
from fulcrum.proxy.http import proxyproto
from fulcrum.proxy.http.exchange import Exchange, RequestError
from fulcrum.proxy.http.responses import error_response, redirect_response
from fulcrum.proxy.http.service import HttpService
from fulcrum.proxy.http.upstream import Upstream

log = logging.getLogger("fulcrum.http")

WRITE_HIGH_WATER = 256 * 1024
WRITE_LOW_WATER = 64 * 1024
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})


class HttpConnection(asyncio.Protocol):
    """A client connection to an http service."""

    __slots__ = ("svc", "ctx", "opts", "transport", "client_ip", "client_ip_bytes", "client_addr",
                 "local_addr", "proxy_header", "parser", "queue", "receiving", "error", "blockers",
                 "write_paused", "closed", "client_eof", "tunnel", "head_fed", "url_len",
                 "header_bytes", "deadline", "deadline_kind", "timer", "touched", "idle_ticks",
                 "proto", "corked", "out", "up_dirty", "resp_deadline", "private")

    def __init__(self, svc: HttpService):
        self.svc = svc
        self.ctx: ServiceContext = svc.ctx
        self.opts = svc.opts
        self.transport: Any = None
        self.client_ip = "unknown"
        self.client_ip_bytes = b"unknown"
        self.client_addr: tuple[str, int] = ("0.0.0.0", 0)
        self.local_addr: tuple[str, int] = ("0.0.0.0", 0)
        self.proxy_header: bytes | None = None  # bytes of an expected PROXY header so far
        self.parser: Any = httptools.HttpRequestParser(self)
        self.queue: list[Exchange] = []
        self.receiving: Exchange | None = None
        self.error: RequestError | None = None
        self.blockers: set[str] = set()
        self.write_paused = False
        self.closed = False
        self.client_eof = False  # half-closed: answer what is queued, then close
        self.tunnel: Upstream | None = None
        self.head_fed = 0
        self.url_len = 0
        self.header_bytes = 0
        self.deadline = 0.0
        self.deadline_kind = ""
        self.touched = True
        self.idle_ticks = 0
        self.proto = svc.proto
        # Corking: while a read is being parsed, writes are collected and sent as one at the
        # end (response head + body + chunk end in one send; request head + body likewise).
        self.corked = False
        self.out: list[bytes] = []
        self.up_dirty: Exchange | None = None
        self.resp_deadline = 0.0  # the server answering queue[0] must send by then (0 = none)
        self.private = False  # it opened server connections of its own (PROXY protocol)

    # -- connection events -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        if not self.ctx.admit():
            log.warning("service %s: connection limit reached", self.ctx.name)
            self.closed = True
            self.transport.abort()
            return
        self.ctx.relays.add(self)
        self.svc.watch(self)
        peer = transport.get_extra_info("peername")
        if peer:
            self.client_ip = peer[0]
            self.client_ip_bytes = peer[0].encode()
            self.client_addr = (peer[0], peer[1])
        if self.svc.trusted_proxies and proxyproto.trusted(self.client_ip, self.svc.trusted_proxies):
            self.proxy_header = b""  # a trusted balancer in front must send a PROXY header
        self.transport.set_write_buffer_limits(WRITE_HIGH_WATER, WRITE_LOW_WATER)
        self._arm("head", self.opts.header_timeout)  # the first request's head (slowloris)

    def data_received(self, data: bytes) -> None:
        self.touched = True
        if self.tunnel is not None:
            self.tunnel.transport.write(data)
            return
        if self.error is not None:
            return  # after a rejected request nothing more is read
        if self.proxy_header is not None:
            data = self._read_proxy_header(data)
            if not data:
                return
        if self.deadline_kind == "body":
            now = self.ctx.loop.time()
            self.deadline = now + self.opts.body_timeout
            if self.resp_deadline:  # a server is not late while the client is still uploading
                self.resp_deadline = now + self.opts.response_timeout
        elif self.deadline_kind == "keepalive":
            self._arm("head", self.opts.header_timeout)
        self.corked = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            # llhttp stops after an upgrade request; what follows belongs to the new protocol
            rest = data[upgrade.args[0]:]
            if self.queue and rest:
                self._send_request_bytes(self.queue[-1], rest)
            self.block_reading("upgrade")
        except httptools.HttpParserCallbackError as err:
            cause = err.__context__
            if isinstance(cause, RequestError):
                self.reject(cause)
            else:
                log.exception("service %s: internal error", self.ctx.name, exc_info=cause)
                self.reject(RequestError(500, "internal error"))
        except httptools.HttpParserError as err:
            self.reject(RequestError(400, str(err)))
        else:
            if self.head_fed:  # a head is still incomplete: llhttp may be buffering one huge field
                self.head_fed += len(data)
                if self.head_fed > self.opts.max_header_bytes + self.opts.max_request_line:
                    self.reject(RequestError(431, "request head too large"))
        finally:
            self.uncork()

    def eof_received(self) -> bool:
        if self.tunnel is not None and self.tunnel.transport is not None:
            if self.tunnel.transport.can_write_eof():
                self.tunnel.transport.write_eof()
            return True
        # a client that half-closes after its requests still gets the answers
        self.client_eof = True
        if not self.queue:
            self.close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.close(abort=True)
        self.parser = None  # parser <-> protocol is a cycle; no more data comes now

    def pause_writing(self) -> None:
        self.write_paused = True
        up = self.tunnel or (self.queue[0].upstream if self.queue else None)
        if up is not None and up.transport is not None:
            up.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        up = self.tunnel or (self.queue[0].upstream if self.queue else None)
        if up is not None and up.transport is not None:
            up.transport.resume_reading()

    def _to_client(self, data: bytes) -> None:
        if self.corked:
            self.out.append(data)
        elif self.transport is not None:
            self.transport.write(data)

    def cork(self) -> None:
        self.corked = True

    def uncork(self) -> None:
        self.corked = False
        if self.out:
            data = b"".join(self.out)
            self.out.clear()
            if self.transport is not None:
                self.transport.write(data)
        ex = self.up_dirty
        if ex is not None:
            self.up_dirty = None
            if ex.up_out:
                data = b"".join(ex.up_out)
                ex.up_out.clear()
                if ex.upstream is not None and ex.upstream.transport is not None:
                    ex.upstream.transport.write(data)

    def block_reading(self, reason: str) -> None:
        if not self.blockers and self.transport is not None and not self.closed:
            self.transport.pause_reading()
        self.blockers.add(reason)

    def unblock_reading(self, reason: str) -> None:
        blockers = self.blockers
        if reason in blockers:
            blockers.discard(reason)
            if not blockers and self.transport is not None and not self.closed:
                self.transport.resume_reading()

    def _read_proxy_header(self, data: bytes) -> bytes:
        """Consume the PROXY header of a trusted upstream balancer; return what follows it."""
        assert self.proxy_header is not None
        buffered = self.proxy_header + data
        try:
            decoded = proxyproto.decode(buffered)
        except proxyproto.ProxyHeaderError as err:
            self.reject(RequestError(400, str(err)))
            return b""
        if decoded is None:
            self.proxy_header = buffered
            return b""
        addresses, used = decoded
        self.proxy_header = None
        if addresses.src is not None and addresses.dst is not None:
            self.client_ip, self.client_addr, self.local_addr = addresses.src[0], addresses.src, addresses.dst
            self.client_ip_bytes = self.client_ip.encode()
        return buffered[used:]

    # -- request parser callbacks (httptools) ------------------------------------------

    def on_message_begin(self) -> None:
        if self.closed:  # closed while this read was being parsed: the rest is not read
            raise RequestError(400, "connection closed")
        ex = Exchange(self)
        self.receiving = ex
        self.queue.append(ex)
        self.url_len = self.header_bytes = 0
        self.head_fed = 1
        if self.deadline_kind != "head":
            self._arm("head", self.opts.header_timeout)
        if len(self.queue) > 1:
            self.block_reading("pipelined")

    def on_url(self, url: bytes) -> None:
        ex = self.receiving
        assert ex is not None
        self.url_len += len(url)
        if self.url_len > self.opts.max_request_line:
            raise RequestError(414, "request-target too long")
        ex.target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        ex = self.receiving
        assert ex is not None
        self.header_bytes += len(name) + len(value) + 4
        if self.header_bytes > self.opts.max_header_bytes or len(ex.headers) >= self.opts.max_headers:
            raise RequestError(431, "request header fields too large")
        ex.headers.append((name, value))

    def on_headers_complete(self) -> None:
        ex = self.receiving
        assert ex is not None
        self.head_fed = 0
        parser = self.parser
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):
            # RFC 9112 §2.3: a 1.x parser only reads 1.x; HTTP/0.9 has no headers to frame
            raise RequestError(505 if version.startswith("2") else 400, f"HTTP version {version}")
        ex.version = version.encode()
        ex.method = parser.get_method()
        ex.keep_alive = parser.should_keep_alive()
        hosts = 0
        for name, value in ex.headers:
            lower = name.lower()
            if lower == b"host":
                hosts += 1
                ex.host = value
            elif lower == b"transfer-encoding":
                ex.chunked = ex.has_body = True  # llhttp already required chunked to be final
            elif lower == b"content-length":
                ex.has_body = value != b"0"
            elif lower == b"connection":
                ex.options = (ex.options or set()) | hdr.named_options(value)
            elif lower == b"cookie":
                ex.cookies.append(value)
        if hosts > 1 or (not hosts and version == "1.1"):
            raise RequestError(400, "a request needs exactly one Host")  # RFC 9112 §3.2
        ex.upgrade = bool(parser.should_upgrade()) or ex.method == b"CONNECT"
        if ex.method == b"CONNECT":
            raise RequestError(405, "CONNECT is not proxied")
        self._arm("body" if ex.has_body else "none", self.opts.body_timeout)
        if self.queue[0] is ex:
            self.dispatch(ex)

    def on_body(self, body: bytes) -> None:
        ex = self.receiving
        if ex is not None and not ex.finished:
            self._send_request_bytes(ex, b"%x\r\n%s\r\n" % (len(body), body) if ex.chunked else body)

    def on_message_complete(self) -> None:
        ex = self.receiving
        assert ex is not None
        self.receiving = None
        ex.request_done = True
        if ex.chunked and not ex.finished:
            self._send_request_bytes(ex, b"0\r\n\r\n")
        if self.deadline_kind == "body":
            self._arm("none", 0)
        if not ex.keep_alive:
            self.block_reading("last-request")  # RFC 9112 §9.6: nothing after close is read

    # -- sending a request to a server ---------------------------------------------------

    def dispatch(self, ex: Exchange, fresh: bool = False) -> None:
        """Choose a server for the exchange at the head of the queue and send it there."""
        svc = self.svc
        if self.opts.redirect_https:
            self._to_client(redirect_response(b"https://" + (ex.host or b"localhost") + ex.target))
            svc.count_response(308)
            ex.sent_head = ex.keep_alive = False
            self._finish(ex, keep_upstream=False)
            return
        now = self.ctx.loop.time()
        if ex.pool is None:
            ex.pool = svc.pools.get(svc.router.pool_for(ex.host, ex.target)) or self.ctx.pool
        pool = ex.pool
        choice = svc.choose(pool, ex, self.client_ip, now)
        if choice is None:
            if ex.retried:  # the server we retried after failed us: that failure is the answer
                self.local_response(ex, 502)
            else:
                self.local_response(ex, 503, [(b"Retry-After", b"%d" % self.opts.retry_after)])
            return
        backend, ex.set_cookie = choice
        ex.backend = backend
        pool.taken(backend)
        ex.head_bytes = svc.edit.head(ex.method, ex.target, ex.headers, self.client_ip_bytes, ex.host,
                                      svc.hostport(backend), ex.options, ex.upgrade, ex.chunked)
        up = None if fresh else svc.idle.get(backend, now, self._owner(pool))
        if up is not None:
            self._attach(ex, up)
        else:
            ex.connecting = self.ctx.loop.create_task(self._connect(ex, backend))

    def _owner(self, pool: PoolRuntime) -> int:
        """Server connections that start with a PROXY header describe one client: private."""
        if pool.config.proxy_protocol == "none":
            return 0
        if not self.private:
            self.private = True
            if self.proxy_header is None and self.local_addr[1] == 0:  # not told by a PROXY header
                local = self.transport.get_extra_info("sockname")
                self.local_addr = (local[0], local[1])
        return id(self)

    async def _connect(self, ex: Exchange, backend: Backend) -> None:
        loop = self.ctx.loop
        assert ex.pool is not None
        owner = self._owner(ex.pool)
        tls = self.svc.client_tls(ex.pool)
        name = (ex.pool.config.tls_server_name or backend.address) if tls is not None else None
        try:
            async with asyncio.timeout(self.ctx.timeouts.connect or None):
                _, up = await loop.create_connection(
                    lambda: Upstream(backend, self.svc.idle, owner), backend.address, backend.port,
                    ssl=tls, server_hostname=name)
        except (OSError, TimeoutError) as err:  # ssl.SSLError (a failed verification) is an OSError
            ex.connecting = None
            reason = "connect timeout" if isinstance(err, TimeoutError) else (err.strerror or str(err))
            self._connect_failed(ex, backend, reason)
            return
        ex.connecting = None
        if self.closed or ex.finished:
            up.close()
            return
        version = ex.pool.config.proxy_protocol
        if version != "none":
            encode = proxyproto.encode_v1 if version == "v1" else proxyproto.encode_v2
            up.transport.write(encode(self.client_addr, self.local_addr))
        self._attach(ex, up)

    def _connect_failed(self, ex: Exchange, backend: Backend, reason: str) -> None:
        pool = ex.pool
        assert pool is not None
        pool.released(backend)
        ex.backend = None
        pool.connect_failed(backend, self.ctx.loop.time())
        if self.ctx.health is not None:
            self.ctx.health.passive_failure(pool.name, backend, reason)
        log.info("service %s: connect to %s failed (%s)", self.ctx.name, backend.key, reason)
        if self.closed or ex.finished:
            return
        ex.tried.append(backend)  # nothing was sent: any request may go elsewhere
        if pool.config.stubborn:
            self.local_response(ex, 503, [(b"Retry-After", b"%d" % self.opts.retry_after)])
        else:
            self.dispatch(ex)

    def _attach(self, ex: Exchange, up: Upstream) -> None:
        ex.upstream = up
        up.exchange = ex
        up.got_bytes = False
        if not up.reused:
            up.transport.set_write_buffer_limits(WRITE_HIGH_WATER, WRITE_LOW_WATER)
        if self.write_paused:
            up.transport.pause_reading()
        pending = [ex.head_bytes, *ex.buffered] if ex.buffered else [ex.head_bytes]
        ex.buffered = None
        if self.corked:
            ex.up_out += pending
            self.up_dirty = ex
        else:
            up.transport.write(b"".join(pending))
        self._arm_response()

    def _send_request_bytes(self, ex: Exchange, data: bytes) -> None:
        if ex.buffered is not None:
            ex.buffered.append(data)
        elif ex.upstream is not None and ex.upstream.transport is not None:
            if self.corked:
                ex.up_out.append(data)
                self.up_dirty = ex
            else:
                ex.upstream.transport.write(data)

    # -- timeouts: deadlines kept here, checked by the service's sweep (service.py) ---------
    # No timer per connection or request: a deadline is a float set on events, and the
    # service looks at all of them a few times per shortest timeout.

    def _arm_response(self) -> None:
        if self.opts.response_timeout:
            self.resp_deadline = self.ctx.loop.time() + self.opts.response_timeout

    def server_activity(self, ex: Exchange) -> None:
        self.touched = True  # for the node's idle sweep: a long download is not idle
        if self.resp_deadline:
            self.resp_deadline = self.ctx.loop.time() + self.opts.response_timeout

    def check_deadlines(self, now: float) -> None:
        """Called by the service's sweep."""
        if self.closed:
            return
        if self.write_paused and self.resp_deadline:
            self.resp_deadline = now + self.opts.response_timeout  # the client is slow, not the server
        elif self.resp_deadline and now >= self.resp_deadline and self.queue:
            ex = self.queue[0]
            log.info("service %s: server %s timed out", self.ctx.name, ex.backend.key if ex.backend else "?")
            self.resp_deadline = 0.0
            self.server_failed(ex, "response timeout", status=504)
        kind = self.deadline_kind
        if kind in ("head", "body") and self.blockers:
            # we are not reading (a slow server, a pipelined request waiting its turn): any
            # delay is ours, not the client's
            self.deadline = now + (self.opts.body_timeout if kind == "body" else self.opts.header_timeout)
        elif kind and now >= self.deadline and not self.closed:
            self.deadline_kind = ""
            if kind == "keepalive":
                self.close()
            else:
                self.reject(RequestError(408, f"request {kind} not received in time"))

    # -- response events (called by Upstream) -------------------------------------------

    def response_head(self, ex: Exchange, status: int, reason: bytes, headers: hdr.Headers) -> None:
        ex.resp_status = status
        if status == 101 and ex.upgrade:
            self._start_tunnel(ex, status, reason, headers)
            return
        svc = self.svc
        rewrite = svc.server_origins(ex.backend) if self.opts.rewrite_location and ex.backend else None
        public = svc.public_origins.get(ex.host) if rewrite is not None else None
        if rewrite is not None and public is None:
            public = svc.public_origin(ex.host)
        lines, framed_by_length, had_te = hdr.response_fields(headers, rewrite, public)  # pieces
        if 100 <= status < 200:
            if ex.version == b"1.1" and status != 101:  # interim answers only to 1.1 (RFC 9110 §15.2)
                self._to_client(b"HTTP/1.1 %d %s\r\n%s\r\n" % (status, reason, b"".join(lines)))
            return
        ex.sent_head = True
        svc.count_response(status)
        if ex.set_cookie is not None:
            lines.append(b"Set-Cookie: " + ex.set_cookie + b"\r\n")
        no_body = ex.method == b"HEAD" or status in (204, 304)
        ex.resp_framed = framed_by_length or had_te
        if no_body:
            ex.resp_mode = "none"
        elif framed_by_length:
            ex.resp_mode = "length"
        elif ex.version == b"1.1":
            ex.resp_mode = "chunk"
            lines.append(b"Transfer-Encoding: chunked\r\n")
        else:
            ex.resp_mode = "raw"  # HTTP/1.0 client: the end of the body is the end of the connection
            ex.keep_alive = False
        if ex.upgrade:
            ex.keep_alive = False  # the server refused the upgrade; the parser cannot go on
        if not ex.keep_alive:
            lines.append(b"Connection: close\r\n")
        elif ex.version == b"1.0":
            lines.append(b"Connection: keep-alive\r\n")
        self._to_client(b"HTTP/%s %d %s\r\n%s\r\n" % (ex.version, status, reason, b"".join(lines)))
        if ex.method == b"HEAD":
            # httptools cannot be told the request was HEAD, so it would wait for a body:
            # the response ends here and this server connection is not reused.
            self.response_complete(ex, reusable=False)

    def response_body(self, ex: Exchange, body: bytes) -> None:
        if ex.finished:
            return
        if ex.resp_mode == "chunk":
            self._to_client(b"%x\r\n%s\r\n" % (len(body), body))
        elif ex.resp_mode != "none":
            self._to_client(body)

    def response_complete(self, ex: Exchange, reusable: bool = True) -> None:
        if ex.finished or not ex.sent_head or self.tunnel is not None:
            return  # an interim (1xx) response ended, or a 101 made this a tunnel
        if ex.resp_mode == "chunk":
            self._to_client(b"0\r\n\r\n")
        up = ex.upstream
        keep = (reusable and up is not None and ex.request_done and up.parser.should_keep_alive()
                and not ex.upgrade)
        self._finish(ex, keep_upstream=keep)

    def server_eof(self, ex: Exchange, lost: bool = False) -> None:
        """The server closed: the end of a read-until-close body, or a failure."""
        if ex.finished:
            return
        if ex.sent_head and not ex.resp_framed:
            self.response_complete(ex, reusable=False)  # RFC 9112 §6.3 rule 8: read until close
            return
        self.server_failed(ex, "connection closed by server")

    def server_failed(self, ex: Exchange, reason: str, status: int = 502) -> None:
        if ex.finished:
            return
        up = ex.upstream
        backend = ex.backend
        log.info("service %s: server %s failed: %s", self.ctx.name, backend.key if backend else "?", reason)
        if ex.sent_head:
            self.abort()  # the client already has part of a response: it must see a broken one
            return
        retry = (up is not None and not up.got_bytes and not ex.retried and not ex.has_body
                 and (up.reused or ex.method in IDEMPOTENT) and status == 502)
        if up is not None:
            up.abort()
            ex.upstream = None
        if retry and up is not None and backend is not None and ex.pool is not None:
            # Sent again, once: an idempotent request (RFC 9110 §9.2.2), or any bodiless one that
            # met a kept-alive connection the server had just closed (RFC 9112 §9.3.1). After a
            # fresh connection failed, another server is tried; after a reused one, the same.
            ex.retried = True
            ex.pool.released(backend)
            ex.backend = None
            ex.buffered = []
            ex.up_out.clear()
            if not up.reused:
                ex.tried.append(backend)
            self.dispatch(ex, fresh=True)
            return
        self.local_response(ex, status)

    # -- tunnels (Upgrade, after the server's 101) ----------------------------------------

    def _start_tunnel(self, ex: Exchange, status: int, reason: bytes, headers: hdr.Headers) -> None:
        up = ex.upstream
        assert up is not None
        ex.sent_head = True
        self.svc.count_response(status)
        self._to_client(hdr.response_head(status, reason, headers, ex.version))
        up.tunnel = True
        self.tunnel = up
        self.resp_deadline = 0.0
        self._arm("none", 0)
        self.blockers.clear()
        self.transport.resume_reading()

    def tunnel_from_server(self, data: bytes) -> None:
        self.touched = True
        self._to_client(data)

    def tunnel_eof(self) -> None:
        if self.transport is not None and self.transport.can_write_eof():
            self.transport.write_eof()

    # -- answers of our own ----------------------------------------------------------------

    def local_response(self, ex: Exchange, status: int, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        """Answer `ex` (the head of the queue) ourselves, then close the connection."""
        self.svc.count_response(status)
        ex.sent_head = True
        ex.keep_alive = False
        self._to_client(error_response(status, extra=extra, head_only=ex.method == b"HEAD"))
        self._finish(ex, keep_upstream=False)

    def reject(self, err: RequestError) -> None:
        """Bad input: answered once every earlier response is out, then the connection closes."""
        if self.error is not None or self.closed:
            return
        err.__traceback__ = None  # its frames hold this connection: no cycle through them
        self.error = err
        self.block_reading("rejected")
        log.info("service %s: rejected request from %s: %d %s", self.ctx.name, self.client_ip, err.status, err)
        ex = self.receiving
        self.receiving = None
        if ex is not None and ex in self.queue:
            if ex.upstream is not None:
                # the server got part of this request: it is out of step now, never reused
                ex.upstream.abort()
                ex.upstream = None
            self.queue.remove(ex)
            self._release(ex)
        if not self.queue:
            self._write_rejection()

    def _write_rejection(self) -> None:
        err = self.error
        assert err is not None
        self.svc.count_response(err.status)
        if self.transport is not None and not self.closed:
            self._to_client(error_response(err.status))
        self.close()

    # -- the end of an exchange ------------------------------------------------------------

    def _release(self, ex: Exchange, keep_upstream: bool = False) -> None:
        ex.finished = True
        if self.queue and self.queue[0] is ex:
            self.resp_deadline = 0.0
        if ex.connecting is not None:
            ex.connecting.cancel()
            ex.connecting = None
        if ex.backend is not None and ex.pool is not None:
            ex.pool.released(ex.backend)
            ex.backend = None
        up = ex.upstream
        ex.upstream = None
        if up is not None:
            if keep_upstream:
                if self.write_paused:
                    up.transport.resume_reading()  # it was paused for this slow client
                self.svc.idle.put(up, self.ctx.loop.time())
            else:
                up.close()

    def _finish(self, ex: Exchange, keep_upstream: bool) -> None:
        self._release(ex, keep_upstream)
        if ex in self.queue:
            self.queue.remove(ex)
        if not ex.keep_alive:
            self.close()  # RFC 9112 §9.6: the last response on this connection
            return
        if len(self.queue) <= 1:
            self.unblock_reading("pipelined")
        if self.queue:
            nxt = self.queue[0]
            if nxt.method and nxt.backend is None and nxt.connecting is None:
                self.dispatch(nxt)  # its head is complete: it was waiting for its turn
        elif self.error is not None:
            self._write_rejection()
        elif self.client_eof:
            self.close()
        elif self.receiving is None:
            self._arm("keepalive", self.opts.keepalive_timeout)

    # -- client-side timers (head 408, body 408, keep-alive idle) ----------------------

    def _arm(self, kind: str, seconds: float) -> None:
        if kind == "none" or not seconds:
            self.deadline_kind = ""
            return
        self.deadline_kind = kind
        self.deadline = self.ctx.loop.time() + seconds

    # -- teardown ------------------------------------------------------------------------

    def close(self, abort: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        self.ctx.relays.discard(self)
        self.ctx.release()
        self.svc.unwatch(self)
        if self.out and self.transport is not None:
            self.transport.write(b"".join(self.out))  # what was corked still goes out first
            self.out.clear()
        for ex in self.queue:
            self._release(ex)
        if self.private:
            self.svc.idle.drop_owner(id(self))
        self.queue.clear()
        if self.receiving is not None:
            self._release(self.receiving)
        if self.tunnel is not None:
            self.tunnel.close()
        if self.transport is not None:
            if abort:
                self.transport.abort()
            else:
                self.transport.close()

    def abort(self) -> None:
        if self.tunnel is not None:
            self.tunnel.abort()
        for ex in self.queue:
            if ex.upstream is not None:
                ex.upstream.abort()
                ex.upstream = None
        self.close(abort=True)
