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

Built from connection.py (state, corking, read blocking, deadlines), dispatch.py (the request
to a server, retries) and response.py (the response to the client); this module keeps the
client-side protocol: connection events, the PROXY header, the request parser callbacks, the
deadline check and teardown.
"""

from __future__ import annotations

import asyncio
import logging

import httptools

from fulcrum.logs import throttle
from fulcrum.observe import CLIENT_ABORT
from fulcrum.proxy.http import headers as hdr
from fulcrum.proxy.http import proxyproto
from fulcrum.proxy.http.connection import (
    BOUNDARY,
    CHUNKED,
    HEAD,
    LENGTH,
    WRITE_HIGH_WATER,
    WRITE_LOW_WATER,
    kernel_unsent,
    reset_on_close,
)
from fulcrum.proxy.http.dispatch import Dispatcher
from fulcrum.proxy.http.exchange import Exchange, RequestError
from fulcrum.proxy.http.framing import (
    COMMON_STARTS,
    LLHTTP_METHODS,
    STAND_IN,
    ChunkedBody,
    FramingError,
    split_method,
)
from fulcrum.proxy.http.framing import DONE as CHUNKS_DONE
from fulcrum.proxy.http.response import Responder

log = logging.getLogger("fulcrum.http")


class HttpConnection(Dispatcher, Responder):
    """A client connection to an http service."""

    __slots__ = ()

    # -- connection events -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        if not self.ctx.admit():
            from fulcrum.proxy.tcp import peer_text

            throttle.log(log, logging.WARNING, f"limit {self.ctx.name}",
                         "service %s: connection limit reached, refusing %s", self.ctx.name, peer_text(transport))
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
        self.t_ready = self.ctx.loop.time()
        self._arm("head", self.opts.header_timeout)  # the first request's head (slowloris)

    def data_received(self, data: bytes) -> None:
        self.touched = True
        if self.tunnel is not None:
            self.tunnel.transport.write(data)
            if self.queue:
                self.queue[0].body_in += len(data)  # tunnelled bytes, for the record
            return
        if self.error is not None:
            return  # after a rejected request nothing more is read
        if self.held is not None:  # an Upgrade request awaits its answer (reading is paused)
            self.held += data
            return
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
            self._parse(data)
        except FramingError as err:
            self.reject(RequestError(err.status, str(err)))
        except httptools.HttpParserCallbackError as err:
            cause = err.__context__
            if isinstance(cause, RequestError):
                self.reject(cause)
            else:
                log.exception("service %s: internal error", self.ctx.name, exc_info=cause)
                self.reject(RequestError(500, "internal error"))
        except httptools.HttpParserError as err:
            self.reject(RequestError(400, str(err)))
        finally:
            self.uncork()

    def _parse(self, buf: bytes) -> None:
        """Cut the input at request boundaries and feed llhttp each head (and Content-Length
        body) separately; chunked bodies are decoded by framing.ChunkedBody. Knowing where
        each request starts lets a method llhttp does not know be shown to it as GET
        (framing.py), counts exactly the bytes of a head (the 431 bound; counting whole
        reads gave false 431s, issue 7 item 4), and holds what follows an Upgrade request."""
        if self.in_partial:
            buf, self.in_partial = self.in_partial + buf, b""
        pos, end = 0, len(buf)
        parser = self.parser
        while pos < end and self.error is None and not self.closed and self.held is None:
            state = self.in_state
            if state == BOUNDARY:
                if "last-request" in self.blockers:
                    return  # RFC 9112 §9.6: nothing after a request that closes is read
                self.in_state, self.head_fed, self.head_tail, self.head_done = HEAD, 0, b"", False
                if not buf.startswith(COMMON_STARTS, pos):  # the usual methods need no look
                    start = pos
                    while start < end and buf[start] in (13, 10):  # empty lines before a request (§2.2)
                        start += 1
                    if start == end:
                        self.in_state = BOUNDARY
                        return
                    stop = split_method(buf, start)
                    if stop < 0:
                        self.in_state = BOUNDARY
                        self.in_partial = buf[pos:]  # the method is cut by the read: wait for the rest
                        return
                    method = buf[start:stop]
                    pos = start  # the empty lines are skipped here, as llhttp would
                    if method and method not in LLHTTP_METHODS:
                        self.method_override = method  # a token llhttp does not know (RFC 9110 §9.1)
                        parser.feed_data(STAND_IN)
                        pos = stop
                state = HEAD  # and on with the head, in this same turn
            if state == HEAD:
                tail = self.head_tail
                found = (tail + buf[pos:pos + 3]).find(b"\r\n\r\n") if tail else -1
                if found >= 0:  # the end of the head was cut by the read
                    head_end = pos + found + 4 - len(tail)
                else:
                    found = buf.find(b"\r\n\r\n", pos)
                    head_end = found + 4 if found >= 0 else -1
                piece = buf[pos:head_end] if head_end >= 0 else buf[pos:]
                pos += len(piece)
                try:
                    parser.feed_data(piece)  # first: llhttp's verdict on these bytes comes first
                except httptools.HttpParserUpgrade as upgrade:
                    self._hold(piece[upgrade.args[0]:] + buf[pos:])
                    return
                self.head_fed += len(piece)
                if self.head_fed > self.opts.max_header_bytes + self.opts.max_request_line:
                    raise FramingError("request head too large", 431)  # RFC 6585 §5
                if head_end < 0:
                    self.head_tail = (self.head_tail + piece)[-3:]
                    continue
                if not self.head_done:  # llhttp did not end the head where its CRLF CRLF is
                    raise FramingError("malformed request head")
                ex = self.receiving  # (it may have been answered already: its body still comes)
                if ex is None:  # no body: the request is complete
                    self.in_state = BOUNDARY
                elif ex.chunked:
                    self.in_state, self.chunks = CHUNKED, ChunkedBody(self.opts.max_header_bytes)
                else:
                    self.in_state = LENGTH
            elif state == LENGTH:
                take = min(self.in_left, end - pos)
                piece = buf[pos:pos + take]
                pos += take
                self.in_left -= take
                if not self.in_left:
                    self.in_state = BOUNDARY
                try:
                    parser.feed_data(piece)
                except httptools.HttpParserUpgrade:
                    self._hold(buf[pos:])
                    return
            else:
                chunks = self.chunks
                assert chunks is not None
                out: list[bytes] = []
                pos = chunks.feed(buf, pos, out)
                for data in out:
                    if data:
                        self.on_body(data)
                if chunks.state == CHUNKS_DONE:
                    # llhttp never saw this body: a fresh parser reads the next request
                    self.parser = parser = httptools.HttpRequestParser(self)
                    self.chunks, self.in_state = None, BOUNDARY
                    upgrade = self.receiving is not None and self.receiving.upgrade
                    self.on_message_complete()
                    if upgrade:
                        self._hold(buf[pos:])
                        return

    def _hold(self, rest: bytes) -> None:
        """llhttp stops after an upgrade request. What follows is the new protocol's only if
        the server answers 101; until then it is held and nothing more is read. Sent before
        the 101, it would reach a server that may decline the upgrade and read it as a
        request nobody checked (issue 7 item 1: smuggling through Upgrade)."""
        self.held = rest
        self.in_state = BOUNDARY
        self.block_reading("upgrade")

    def eof_received(self) -> bool:
        if self.tunnel is not None and self.tunnel.transport is not None:
            if self.tunnel.transport.can_write_eof():
                self.tunnel.transport.write_eof()
            return not self.svc.tls  # TLS cannot half-close: asyncio would ignore True and warn on stderr
        # a client that half-closes after its requests still gets the answers
        self.client_eof = True
        ex = self.receiving
        if ex is not None:
            # Cut off mid-head or mid-body (an aborted upload): this request can never
            # complete. Its server, which may hold part of it, is disconnected at once rather
            # than left waiting out the body timeout with both descriptors (issue 7 item 5).
            self.receiving = None
            ex.termination = CLIENT_ABORT
            self._drop(ex)
        if not self.queue:
            self.close()
        return not self.svc.tls  # (see above: no stray "eof_received" line per TLS connection)

    def _drop(self, ex: Exchange) -> None:
        """Forget an incomplete request; a server that got part of it is out of step with us
        now and is disconnected, never reused (RFC 9112 §9.3)."""
        if ex in self.queue:
            if ex.upstream is not None:
                ex.upstream.abort()
                ex.upstream = None
            self.queue.remove(ex)
        self._release(ex)

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
        ex.t_begin = self.ctx.loop.time()
        self.receiving = ex
        self.queue.append(ex)
        self.url_len = self.header_bytes = 0
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
        self.head_done = True
        parser = self.parser
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):
            # RFC 9112 §2.3: a 1.x parser only reads 1.x; HTTP/0.9 has no headers to frame
            raise RequestError(505 if version.startswith("2") else 400, f"HTTP version {version}")
        ex.version = version.encode()
        ex.method = self.method_override or parser.get_method()
        self.method_override = None
        ex.head_in = len(ex.method) + self.url_len + self.header_bytes + 14  # "M T HTTP/1.1" CRLF CRLF
        ex.wait_request = max(0.0, self.ctx.loop.time() - self.t_ready)
        ex.keep_alive = parser.should_keep_alive()
        hosts = 0
        for name, value in ex.headers:
            lower = name.lower()
            if lower == b"host":
                hosts += 1
                ex.host = value
            elif lower == b"transfer-encoding":
                ex.chunked = ex.has_body = True  # llhttp already required chunked to be final
                if value.lower() != b"chunked":  # codings before chunked are kept (RFC 9112 §6.1)
                    ex.codings = value if ex.codings is None else ex.codings + b", " + value
            elif lower == b"content-length":
                ex.has_body = value != b"0"
                self.in_left = int(value)  # llhttp checked it is digits, and only one
            elif lower == b"connection":
                ex.options = (ex.options or set()) | hdr.named_options(value)
            elif lower == b"cookie":
                ex.cookies.append(value)
        if hosts > 1 or (not hosts and version == "1.1"):
            raise RequestError(400, "a request needs exactly one Host")  # RFC 9112 §3.2
        ex.upgrade = bool(parser.should_upgrade()) or ex.method == b"CONNECT"
        if ex.method == b"CONNECT":
            raise RequestError(405, "CONNECT is not proxied")
        if ex.target[:1] != b"/":
            self._absolute_target(ex)
        elif ex.host is not None and not hdr.valid_host(ex.host):
            raise RequestError(400, "invalid Host")  # RFC 9112 §3.2 (issue 7 item 12)
        self._arm("body" if ex.has_body else "none", self.opts.body_timeout)
        if self.queue[0] is ex:
            self.dispatch(ex)

    def _absolute_target(self, ex: Exchange) -> None:
        """RFC 9112 §3.2.2: a request in absolute-form (`GET http://h/x`) is routed and sent by
        its authority, which replaces Host (the received Host is ignored), in origin-form."""
        if ex.target == b"*" and ex.method == b"OPTIONS":  # asterisk-form, RFC 9112 §3.2.4
            return
        try:
            found = hdr.absolute_form(ex.target)
        except hdr.TargetError as err:
            raise RequestError(400, str(err)) from None
        if found is None:
            raise RequestError(400, "request target is not in origin or absolute form")
        authority, ex.target = found
        ex.host = authority
        ex.headers = [(n, v) for n, v in ex.headers if n.lower() != b"host"]
        ex.headers.append((b"Host", authority))

    def on_body(self, body: bytes) -> None:
        ex = self.receiving
        if ex is not None and not ex.finished:
            ex.body_in += len(body)
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

    def replay_after_declined_upgrade(self) -> None:
        """The server answered an Upgrade request without 101: the connection stays HTTP, and
        the held bytes are the next request(s), parsed by a fresh parser like any others
        (llhttp cannot leave its upgrade state)."""
        held, self.held = self.held, None
        if self.closed:
            return
        self.parser = httptools.HttpRequestParser(self)
        self.unblock_reading("upgrade")
        if held:
            self.data_received(held)

    # -- timeouts ---------------------------------------------------------------------------

    def check_deadlines(self, now: float) -> None:
        """Called by the service's sweep."""
        if self.closed:
            return
        if self.write_paused and self.resp_deadline:
            self.resp_deadline = now + self.opts.response_timeout  # the client is slow, not the server
        elif self.resp_deadline and self.queue and self.queue[0].unsent != 0:
            self._request_progress(self.queue[0], now)
        if self.resp_deadline and now >= self.resp_deadline and self.queue:
            ex = self.queue[0]
            where = ex.backend.key if ex.backend else "?"
            throttle.log(log, logging.INFO, f"timeout {self.ctx.name} {where}", "service %s: server %s timed out (for %s)",
                         self.ctx.name, where, self.client_ip)
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

    def _request_progress(self, ex: Exchange, now: float) -> None:
        """The response timeout measures a server that does nothing while a response is due.
        While the request is still on its way (its body still coming, or bytes waiting in our
        buffer or in the kernel's send queue), every byte the server takes restarts it; it
        runs from when the request has been sent whole (issue 7 item 14: a server reading a
        large upload slowly was given a 504 although it was reading all along)."""
        up = ex.upstream
        if up is None or up.transport is None:
            return
        pending = up.transport.get_write_buffer_size() + kernel_unsent(up.transport)
        if pending != ex.unsent:
            self.resp_deadline = now + self.opts.response_timeout
        ex.unsent = pending if pending or not ex.request_done else 0

    # -- teardown ------------------------------------------------------------------------

    def close(self, abort: bool = False, reason: str = CLIENT_ABORT) -> None:
        """Close the connection; requests not answered yet end with `reason` (observe.py)."""
        if self.closed:
            return
        self.closed = True
        self.held = None
        self.ctx.relays.discard(self)
        self.ctx.release()
        self.svc.unwatch(self)
        if self.out and self.transport is not None:
            self.transport.write(b"".join(self.out))  # what was corked still goes out first
            self.out.clear()
        for ex in self.queue:
            if not ex.termination:
                ex.termination = reason
            self._release(ex)
        if self.private:
            self.svc.idle.drop_owner(id(self))
        self.queue.clear()
        if self.receiving is not None:
            self._release(self.receiving)  # already released with the queue: a no-op
        if self.tunnel is not None:
            self.tunnel.close()
        if self.transport is not None:
            if abort:
                self.transport.abort()
            else:
                self.transport.close()

    def shutdown(self) -> None:
        """The node is stopping (SIGTERM; issue 7 item 8). An idle keep-alive connection is
        closed now: it would only delay the exit. One with requests in flight keeps being
        served: the last response carries `Connection: close` (RFC 9112 §9.6) and the
        connection closes after it, so no request is lost. A tunnel drains like a TCP relay."""
        if self.closed or self.tunnel is not None:
            return
        self.stopping = True
        if not self.queue:
            self.close()

    def abort(self, reason: str = "shutdown") -> None:
        """Cut the connection; `reason` is the termination word of its record (observe.py)."""
        if self.tunnel is not None:
            self.tunnel.abort()
        for ex in self.queue:
            if ex.upstream is not None:
                ex.upstream.abort()
                ex.upstream = None
        if not self.closed and self.transport is not None:
            reset_on_close(self.transport)
        self.close(abort=True, reason=reason)
