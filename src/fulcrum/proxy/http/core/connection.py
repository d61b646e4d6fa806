"""One client connection of the HTTP/1.1 proxy, sans I/O: bytes and events in, bytes and
actions out. This module is one request's walk, top to bottom:

1. the request head arrives (parser callbacks, the RFC 9112 rules llhttp leaves to us),
2. it is dispatched: a pool and a server are chosen, an idle connection taken or one asked for,
3. its body streams to the server,
4. the response head and body stream back, re-framed for the client,
5. the exchange ends: the server connection is kept or closed, the next pipelined request goes,
6. or a failure ends it: a retry, an answer of the proxy's own, or a cut,
7. timers: deadlines are values (`timer_at`, `response_at`) that the shell's sweep compares
   with the clock, calling `tick(now)`; the core arms nothing,
8. and the connection closes.

Every state change is a move in the tables of states.py, which raise on an illegal one.
The shells (server.py, upstream.py) feed events in (`client_data`, `server_data`,
`server_connected`, `client_eof`, `tick`...) and after each write `to_client`, the `out` of
every side in `dirty`, and carry out `actions` (actions.py) in order.

Requests are answered strictly in order (RFC 9112 §9.3.2): `queue` holds the exchanges; only
the first talks to a server; the client is not read while a second one waits, so buffering is
bounded by one read. Rejected input is answered once every earlier response is out, and the
connection closes: after a framing error the client's byte stream cannot be trusted.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import httptools

from fulcrum.balance.base import Backend
from fulcrum.balance.pool import PoolRuntime
from fulcrum.config.model import Http
from fulcrum.logs import throttle
from fulcrum.observe import (
    CLIENT_ABORT,
    CONNECT_FAILED,
    LIMIT,
    NO_SERVER,
    REJECTED,
    SERVER_ABORT,
    TIMEOUT,
)
from fulcrum.proxy.http import headers as hdr
from fulcrum.proxy.http import proxyproto
from fulcrum.proxy.http.codings import decoder_for
from fulcrum.proxy.http.codings import split as split_codings
from fulcrum.proxy.http.core import actions as act
from fulcrum.proxy.http.core.server import IdleConnections, Leftover, ServerSide
from fulcrum.proxy.http.core.states import (
    CLIENT_NEXT,
    EXCHANGE_NEXT,
    SERVER_NEXT,
    ClientState,
    ExchangeState,
    IllegalTransition,
    ServerState,
)
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
from fulcrum.proxy.http.responses import error_response, redirect_response
from fulcrum.proxy.http.routing import RouteRule
from fulcrum.proxy.http.settings import HttpSettings

log = logging.getLogger("fulcrum.http")

# RFC 9110 §9.2.2: methods whose repetition has the effect of one request
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})
BUFFER_LIMIT = 256 * 1024
SHORTAGE_RETRY = 0.1  # seconds between connect attempts while our descriptors are short  # request bytes held while a server is connected; then reading stops

C = ClientState
E = ExchangeState
S = ServerState
READING = frozenset({C.IDLE, C.HEAD, C.BODY, C.TUNNEL})
PARSING = frozenset({C.IDLE, C.HEAD, C.BODY})
BOUNDARY, IN_HEAD, IN_LENGTH, IN_CHUNKED = range(4)  # ClientCore.in_state


class Service(Protocol):
    """What the core needs from its service (service.py): settings and pure policy."""

    idle: IdleConnections
    edit: hdr.RequestEdit

    @property
    def opts(self) -> HttpSettings | Http:
        """Its settings; a model (tests, tools) is copied per connection."""

    def route(self, host: bytes | None, target: bytes) -> tuple[RouteRule | None, PoolRuntime]: ...

    def choose(self, pool: PoolRuntime, ex: Exchange, client_ip: str,
               now: float) -> tuple[Backend, bytes | None] | None: ...

    def hostport(self, backend: Backend) -> bytes: ...

    def location_origins(self, backend: Backend, host: bytes | None) -> tuple[tuple[bytes, ...], bytes] | None: ...

    def count_response(self, status: int) -> None: ...

    def record(self, core: ClientCore, ex: Exchange | None, now: float) -> None:
        """One finished request (or a refusal before any began) becomes an Observation."""


class _Stop(Exception):
    """Raised in a parser callback to stop parsing quietly (nothing more is to be read)."""


class ClientCore:
    __slots__ = ("svc", "opts", "state", "parser", "queue", "receiving", "to_client", "dirty",
                 "actions", "reading", "server_full", "write_paused", "error", "held",
                 "eof_pending", "timer", "timer_at", "response_at", "draining", "now",
                 "url_len", "header_bytes", "head_fed", "client_ip", "in_state", "in_left",
                 "in_partial", "head_tail", "chunks", "method_override", "head_done",
                 "client_ip_bytes", "client_addr", "local_addr", "proxy_header", "private",
                 "tunnel", "ended", "t_ready", "io", "host_seen")

    def __init__(self, svc: Service, now: float, client_addr: tuple[str, int] | None,
                 expect_proxy_header: bool = False):
        self.svc = svc
        opts = svc.opts
        self.opts = opts if isinstance(opts, HttpSettings) else HttpSettings(opts)
        self.state = C.IDLE
        self.parser: Any = httptools.HttpRequestParser(self)
        self.queue: list[Exchange] = []
        self.receiving: Exchange | None = None  # the request whose head or body is arriving
        self.to_client: list[bytes] = []
        self.dirty: list[ServerSide] = []
        self.actions: list[tuple[Any, ...]] = []
        self.reading = True
        self.server_full = False  # the server is not taking the upload as fast as it comes
        self.write_paused = False  # the client is not taking the response as fast as it comes
        self.error: RequestError | None = None
        self.held = b""  # bytes after an Upgrade request, parsed or tunnelled after its answer
        self.eof_pending = False  # the client sent FIN while its Upgrade was being answered
        self.timer = ""  # "head" | "body" | "keepalive" | "" (the client-side deadline)
        self.timer_at = 0.0
        self.response_at = 0.0  # the server answering queue[0] must send by then (0: no deadline)
        self.draining = False
        self.now = now
        self.url_len = self.header_bytes = self.head_fed = 0
        # request framing beside llhttp (_parse, framing.py): where the input is
        self.in_state = BOUNDARY  # BOUNDARY (before a request), IN_HEAD, IN_LENGTH or IN_CHUNKED body
        self.in_left = 0  # IN_LENGTH: body bytes still to come
        self.in_partial = b""  # the start of a method split across reads
        self.head_tail = b""  # IN_HEAD: the last bytes fed, to find a CRLF CRLF cut by a read
        self.chunks: ChunkedBody | None = None  # IN_CHUNKED: the decoder
        self.method_override: bytes | None = None  # a method llhttp was shown as GET
        self.head_done = False  # llhttp completed the head just fed
        self.client_ip = client_addr[0] if client_addr else "unknown"
        self.client_ip_bytes = self.client_ip.encode()
        self.client_addr = client_addr or ("0.0.0.0", 0)
        self.local_addr: tuple[str, int] | None = None  # from a PROXY header, else asked of the shell
        self.proxy_header: bytes | None = b"" if expect_proxy_header else None
        self.private = False  # it opened server connections of its own (PROXY protocol to servers)
        self.tunnel: ServerSide | None = None
        self.ended = False  # torn down: CLOSE_CLIENT was asked for
        self.t_ready = now  # the connection's start or its last response's end
        self.io: Any = None  # the shell's protocol object
        self.host_seen: bytes | None = None  # the last Host value found valid
        self._arm("head", self.opts.header_timeout)  # the first request's head (slowloris)

    # -- events from the client ------------------------------------------------------------

    def client_data(self, data: bytes, now: float) -> None:
        self.now = now
        state = self.state
        if state is C.TUNNEL:
            tunnel = self.tunnel
            assert tunnel is not None and tunnel.exchange is not None
            tunnel.exchange.body_in += len(data)
            self._to_server(tunnel, data)
            return
        if state not in READING:
            if state is C.SWITCHING:
                self.held += data  # read before the pause took effect: waits with the rest
            return  # after the last request, bad input or a FIN nothing more is read
        if self.proxy_header is not None:
            data = self._read_proxy_header(data)
            if not data:
                return
        timer = self.timer
        if timer == "body":
            self.timer_at = now + self.opts.body_timeout
        elif timer == "keepalive":
            self._arm("head", self.opts.header_timeout)
        self._feed(data)
        self._flow()

    def _feed(self, data: bytes) -> None:
        try:
            self._parse(data)
        # one name per clause: mypyc (make compiled) gives a name one type for the function
        except FramingError as framing:
            self._reject(RequestError(framing.status, str(framing)))
        except RequestError as err:  # from a callback called directly (the end of a chunked body)
            self._reject(err)
        except _Stop:
            pass
        except httptools.HttpParserCallbackError as callback:
            cause = callback.__context__
            if isinstance(cause, RequestError):
                self._reject(cause)
            elif not isinstance(cause, _Stop):
                log.error("http: internal error", exc_info=cause)
                self._reject(RequestError(500, "internal error"))
        except httptools.HttpParserError as invalid:
            if self.state is not C.MUST_CLOSE:  # bytes after the last request are not read
                self._reject(RequestError(400, str(invalid)))

    def _parse(self, buf: bytes) -> None:
        """Cut the input at request boundaries and feed llhttp each head (and Content-Length
        body) separately; chunked bodies are decoded by framing.ChunkedBody. Knowing where
        each request starts lets a method llhttp does not know be shown to it as GET
        (framing.py; RFC 9110 §9.1), counts exactly the bytes of a head (the 431 bound;
        counting whole reads gave false 431s, issue 7 item 4), and holds what follows an
        Upgrade request (issue 7 item 1)."""
        if self.in_partial:
            buf, self.in_partial = self.in_partial + buf, b""
        pos, end = 0, len(buf)
        parser = self.parser
        while pos < end and self.state in PARSING:
            state = self.in_state
            if state == BOUNDARY:
                if self.state is not C.IDLE:
                    return  # RFC 9112 §9.6: nothing after a request that closes is read
                self.in_state, self.head_fed, self.head_tail, self.head_done = IN_HEAD, 0, b"", False
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
                state = IN_HEAD  # and on with the head, in this same turn
            if state == IN_HEAD:
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
                    self.in_state, self.chunks = IN_CHUNKED, ChunkedBody(self.opts.max_header_bytes)
                else:
                    self.in_state = IN_LENGTH
            elif state == IN_LENGTH:
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
                    upgrading = self.receiving is not None and self.receiving.upgrade
                    self.on_message_complete()
                    if upgrading:
                        self._hold(buf[pos:])
                        return

    def _hold(self, rest: bytes) -> None:
        """llhttp stops after an Upgrade request. What follows is the new protocol's only if the
        server answers 101; until then it is held and nothing more is read (issue 7 item 1:
        sent before the 101, it would reach a server that may decline the upgrade and read it
        as a request nobody checked)."""
        self.held += rest
        self.in_state = BOUNDARY

    def client_eof(self, now: float) -> None:
        self.now = now
        state = self.state
        self.state = CLIENT_NEXT[state]["eof"]
        if state is C.TUNNEL:
            assert self.tunnel is not None
            self.actions.append((act.EOF_SERVER, self.tunnel))  # half-close passed on
            return
        if state is C.CLOSED:
            return
        self.timer = ""
        ex = self.receiving
        if ex is not None and state in (C.HEAD, C.BODY):
            # Cut off mid-head or mid-body (an aborted upload): this request can never
            # complete, and a server holding part of it is disconnected at once rather than
            # left waiting out the body timeout (issue 7 item 5).
            self.receiving = None
            ex.termination = CLIENT_ABORT
            self._cancel(ex)
        if state is C.SWITCHING:
            self.eof_pending = True
        elif self.state is C.HALF_CLOSED and not self.queue:
            self._close()
        self._flow()

    def client_lost(self) -> None:
        self.state = CLIENT_NEXT[self.state]["lost"]
        self._teardown(abort=True)

    def client_write_paused(self) -> None:
        self.write_paused = True
        side = self.tunnel or (self.queue[0].side if self.queue else None)
        if side is not None:
            self.actions.append((act.PAUSE_SERVER, side))

    def client_write_resumed(self, now: float) -> None:
        self.now = now
        self.write_paused = False
        if self.response_at:  # the server was held back by us until now: its time starts again
            self._arm_response()
        side = self.tunnel or (self.queue[0].side if self.queue else None)
        if side is not None:
            self.actions.append((act.RESUME_SERVER, side))

    def drain(self) -> None:
        """Graceful stop (issue 7 item 8): an idle connection closes now; a busy one after
        its last response, which says Connection: close (RFC 9112 §9.6). A tunnel drains like
        a TCP relay."""
        if self.state is C.TUNNEL:
            return
        self.draining = True
        if self.state is C.IDLE and not self.queue and self.receiving is None:
            self.state = CLIENT_NEXT[self.state]["drain"]
            self._close()

    def _read_proxy_header(self, data: bytes) -> bytes:
        """Consume the PROXY header of a trusted balancer in front; return what follows it."""
        assert self.proxy_header is not None
        buffered = self.proxy_header + data
        try:
            decoded = proxyproto.decode(buffered)
        except proxyproto.ProxyHeaderError as err:
            self._reject(RequestError(400, str(err)))
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

    # -- 1. the request head (request parser callbacks) ------------------------------------

    def on_message_begin(self) -> None:
        if self.state is not C.IDLE:
            raise _Stop  # bytes after the last request, or after a rejected one, are not read
        self.state = CLIENT_NEXT[C.IDLE]["begin"]
        ex = Exchange(self.now)
        self.receiving = ex
        self.queue.append(ex)
        self.url_len = self.header_bytes = 0
        if self.timer != "head":
            self._arm("head", self.opts.header_timeout)

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
            raise RequestError(431, "request header fields too large")  # RFC 6585 §5
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
        ex.wait_request = max(0.0, self.now - self.t_ready)
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
        if ex.method == b"CONNECT":
            raise RequestError(405, "CONNECT is not proxied")  # RFC 9110 §9.3.6: not a tunnel
        if ex.target[:1] != b"/":
            self._absolute_target(ex)
        elif ex.host is not None and ex.host != self.host_seen:  # one check per Host value
            if not hdr.valid_host(ex.host):
                raise RequestError(400, "invalid Host")  # RFC 9112 §3.2 (issue 7 item 12)
            self.host_seen = ex.host
        ex.upgrade = bool(parser.should_upgrade())
        self.state = CLIENT_NEXT[C.HEAD]["head-done"]
        if ex.has_body:
            self._arm("body", self.opts.body_timeout)
        else:
            self.timer = ""
        if self.queue[0] is ex:
            self._dispatch(ex)
        else:
            ex.state = EXCHANGE_NEXT[ex.state]["wait"]

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

    # -- 2. dispatch: a pool, a server, a connection -----------------------------------------

    def _dispatch(self, ex: Exchange, fresh: bool = False) -> None:
        svc = self.svc
        if ex.state is not E.CONNECTING:
            ex.state = EXCHANGE_NEXT[ex.state]["dispatch"]
        if self.opts.redirect_https:
            self._send(ex, redirect_response(b"https://" + (ex.host or b"localhost") + ex.target))
            svc.count_response(308)
            ex.status = 308
            ex.keep_alive = False
            self._end(ex, "answer")
            return
        now = self.now
        if ex.pool is None:
            ex.rule, ex.pool = svc.route(ex.host, ex.target)
        pool = ex.pool
        choice = svc.choose(pool, ex, self.client_ip, now)
        if choice is None:
            if ex.retried:  # the server we retried after failed us: that failure is the answer
                ex.termination = SERVER_ABORT
                self._answer(ex, 502)
            else:
                ex.termination = CONNECT_FAILED if ex.tried else NO_SERVER
                self._answer(ex, 503, [(b"Retry-After", b"%d" % self.opts.retry_after)])
            return
        backend, ex.set_cookie = choice
        ex.backend = backend
        ex.server_key = backend.key
        ex.attempts += 1
        pool.taken(backend)
        ex.head_bytes = svc.edit.head(ex.method, ex.target, ex.headers, self.client_ip_bytes, ex.host,
                                      svc.hostport(backend), ex.options, ex.upgrade, ex.chunked,
                                      ex.codings)
        owner = self._owner(pool) if pool.proxy_header else 0
        side = None if fresh else svc.idle.get(backend, now, owner)
        if side is not None:
            self._attach(ex, side)
        else:
            ex.pending = True  # the shell keeps its own handle here
            self.actions.append((act.CONNECT, ex, backend, owner))

    def _owner(self, pool: PoolRuntime) -> int:
        """Server connections that start with a PROXY header describe one client: private."""
        self.private = True
        return id(self)

    def server_connected(self, ex: Exchange, side: ServerSide, now: float,
                         connect_time: float | None = None) -> bool:
        """A connection the shell opened for `ex` is up. False: it is not wanted any more
        (the shell closes it)."""
        self.now = now
        ex.pending = None
        ex.connect_time = connect_time
        if ex.state is not E.CONNECTING or self.state is C.CLOSED:
            side.state = SERVER_NEXT[side.state]["close"]
            return False
        side.state = SERVER_NEXT[side.state]["connected"]
        self._attach(ex, side)
        self._flow()
        return True

    def connect_failed(self, ex: Exchange, backend: Backend, reason: str, now: float) -> None:
        self.now = now
        ex.pending = None
        pool = ex.pool
        assert pool is not None
        pool.released(backend)
        ex.backend = None
        pool.connect_failed(backend, now)
        if ex.state is not E.CONNECTING or self.state is C.CLOSED:
            return
        ex.state = EXCHANGE_NEXT[ex.state]["connect-failed"]
        ex.tried.append(backend)  # nothing was sent: any request may go elsewhere
        # bounded work per request (issue 7 item 10): at most 1 + `retries` servers tried
        if pool.config.stubborn or ex.attempts > pool.config.retries:
            ex.termination = CONNECT_FAILED
            self._answer(ex, 503, [(b"Retry-After", b"%d" % self.opts.retry_after)])
        else:
            self._dispatch(ex)
        self._flow()

    def connect_short(self, ex: Exchange, backend: Backend, now: float, give_up_after: float) -> None:
        """Connecting failed for want of our own resources (EMFILE...; issue 7 item 7): not the
        server's fault, so no failure counted, no other server; the shell tries again shortly
        (RETRY_CONNECT), until `give_up_after` seconds since the first attempt: then 503."""
        self.now = now
        ex.pending = None
        pool = ex.pool
        assert pool is not None
        pool.released(backend)
        ex.backend = None
        ex.attempts -= 1  # not a try of that server
        if ex.first_attempt is None:
            ex.first_attempt = now
        if ex.state is not E.CONNECTING or self.state is C.CLOSED:
            return
        ex.state = EXCHANGE_NEXT[ex.state]["short"]
        if give_up_after and now - ex.first_attempt + SHORTAGE_RETRY > give_up_after:
            ex.termination = LIMIT
            self._answer(ex, 503, [(b"Retry-After", b"%d" % self.opts.retry_after)])
        else:
            ex.pending = True
            self.actions.append((act.RETRY_CONNECT, ex, SHORTAGE_RETRY))
        self._flow()

    def retry_connect(self, ex: Exchange, now: float) -> None:
        """The pause after a shortage is over: choose and connect again."""
        self.now = now
        ex.pending = None
        if ex.state is E.CONNECTING and self.state is not C.CLOSED:
            self._dispatch(ex)
            self._flow()

    def _attach(self, ex: Exchange, side: ServerSide) -> None:
        ex.side = side
        side.exchange = ex
        side.core = self
        side.got_bytes = False
        if self.write_paused:
            self.actions.append((act.PAUSE_SERVER, side))
        out = side.out
        out.append(ex.head_bytes)
        if ex.buffered:
            out += ex.buffered
            ex.buffered = []
        self.dirty.append(side)
        ex.state = EXCHANGE_NEXT[E.CONNECTING]["sent"]
        ex.t_sent = self.now
        if ex.request_done:
            self._arm_response()

    # -- 3. the request body ---------------------------------------------------------------

    def on_body(self, body: bytes) -> None:
        ex = self.receiving
        if ex is not None and ex.state is not E.DONE:
            ex.body_in += len(body)
            self._send_request_bytes(ex, b"%x\r\n%s\r\n" % (len(body), body) if ex.chunked else body)

    def on_message_complete(self) -> None:
        ex = self.receiving
        if ex is None:
            raise _Stop  # the connection closed while this read was parsed
        self.receiving = None
        ex.request_done = True
        if self.state is not C.BODY:
            return  # answered and closed while its body was arriving
        if ex.chunked and ex.state is not E.DONE:
            self._send_request_bytes(ex, b"0\r\n\r\n")
        if self.timer == "body":
            self.timer = ""
        if ex.upgrade and ex.state is not E.DONE:
            self.state = CLIENT_NEXT[C.BODY]["end-upgrade"]
        elif not ex.keep_alive:
            self.state = CLIENT_NEXT[C.BODY]["end-last"]
        else:
            self.state = CLIENT_NEXT[C.BODY]["end"]
        if ex.side is not None and ex.state is E.SENT:
            self._arm_response()  # the response timeout starts once the request is sent (issue 7)

    def _send_request_bytes(self, ex: Exchange, data: bytes) -> None:
        side = ex.side
        if side is None:
            ex.buffered.append(data)
        else:
            self._to_server(side, data)

    def _to_server(self, side: ServerSide, data: bytes) -> None:
        if not side.out:
            self.dirty.append(side)
        side.out.append(data)

    # -- 4. the response (called by ServerSide's parser callbacks) ----------------------------

    def server_data(self, side: ServerSide, data: bytes, now: float) -> None:
        self.now = now
        ex = side.exchange
        if ex is None:
            return
        if not side.got_bytes:
            side.got_bytes = True
            ex.t_response = now
        if side.state is S.TUNNEL:
            self._send(ex, data)
            return
        if self.response_at:
            self.response_at = now + self.opts.response_timeout  # every byte restarts it
        side.feeding = data
        side.cursor = 0
        try:
            side.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            rest = data[upgrade.args[0]:]
            if rest and ex.state is E.TUNNEL:  # after the 101: the new protocol's first bytes
                self._send(ex, rest)
        except httptools.HttpParserCallbackError as err:
            cause = err.__context__
            if isinstance(cause, IllegalTransition):
                log.error("http: internal error", exc_info=cause)
            if not isinstance(cause, Leftover):
                self._server_failed(ex, f"bad response: {cause}")
        except httptools.HttpParserError as err:
            if side.state is S.DONE:
                side.leftover = True  # garbage after a complete response
            else:
                self._server_failed(ex, f"bad response: {err}")
        else:
            if side.head_fed and not side.head_incomplete(data):  # the head is bounded
                self._server_failed(ex, "response head too large")
        side.feeding = b""
        if side.state is S.DONE and side.exchange is ex:
            self._response_ended(ex, side)
        self._flow()

    def response_head(self, side: ServerSide, status: int, reason: bytes, fields: list[bytes]) -> None:
        """A response head, read whole by llhttp: `fields` its field lines as sent, after a slot
        for the status line (core/server.py, headers.py:cut_response_head)."""
        ex = side.exchange
        assert ex is not None
        if status == 101 and ex.upgrade:
            self._start_tunnel(ex, side, status, reason, hdr.field_pairs(fields))
            return
        svc = self.svc
        # lines[0] is left for the status line; the others have no CRLF yet
        lines, framed_by_length, codings, urls = hdr.field_lines(fields, self.opts.rewrite_location)
        if urls and ex.backend is not None:  # a Location to rewrite: only then the origins
            origins = svc.location_origins(ex.backend, ex.host)
            if origins is not None:
                hdr.rewrite_lines(lines, urls, origins[0], origins[1])
        if 100 <= status < 200:
            side.state = SERVER_NEXT[side.state]["interim"]
            ex.state = EXCHANGE_NEXT[ex.state]["interim"]
            if ex.version == b"1.1" and status != 101:  # interim answers only to 1.1 (RFC 9110 §15.2)
                lines[0] = b"HTTP/1.1 %d %s" % (status, reason)
                lines.append(b"\r\n")
                self._send(ex, b"\r\n".join(lines))
            return
        # RFC 9112 §6.3: chunked as the final coding frames the body; any other coding list
        # means the body ends with the connection. Codings before chunked stay (§6.1).
        kept: list[bytes] = []
        chunked = False
        if codings is not None:
            kept, chunked = split_codings(codings)
        ex.resp_framed = chunked or (framed_by_length and codings is None)
        if ex.method == b"HEAD" or status in (204, 304):
            ex.resp_mode = "none"  # RFC 9112 §6.3 (1): no body, whatever the fields say
        elif framed_by_length and codings is None:
            ex.resp_mode = "length"
        elif ex.version == b"1.1":
            ex.resp_mode = "chunk"
            lines.append(b"Transfer-Encoding: " + b", ".join([*kept, b"chunked"]))
        else:
            ex.resp_mode = "raw"  # HTTP/1.0 client: the end of the body is the end of the connection
            ex.keep_alive = False
            if kept:  # it cannot be sent transfer codings (RFC 9112 §6.1): they are undone here
                ex.decoder = decoder_for(kept)
                if ex.decoder is None:  # nothing was written yet: a 502 can still be sent
                    self._server_failed(ex, "transfer coding an HTTP/1.0 client cannot take")
                    return
        side.state = SERVER_NEXT[side.state]["response"]
        ex.state = EXCHANGE_NEXT[ex.state]["response"]
        svc.count_response(status)
        ex.status = status
        if ex.set_cookie is not None:
            lines.append(b"Set-Cookie: " + ex.set_cookie)
        if ex.upgrade:
            side.reusable = False  # a declined upgrade: the server's parser state is unknown
        if self.draining and self.queue[-1] is ex and self.receiving is None:
            ex.keep_alive = False  # stopping, and no later request has begun
        if not ex.keep_alive:
            lines.append(b"Connection: close")
        elif ex.version == b"1.0":
            lines.append(b"Connection: keep-alive")
        lines[0] = b"HTTP/%s %d %s" % (ex.version, status, reason)
        lines.append(b"\r\n")
        self._send(ex, b"\r\n".join(lines))
        if ex.method == b"HEAD":
            # httptools cannot be told the request was HEAD, so it would wait for a body:
            # the response ends here and this server connection is not reused.
            side.persistent = False
            side.state = SERVER_NEXT[side.state]["end"]

    def response_body(self, side: ServerSide, body: bytes) -> None:
        ex = side.exchange
        if ex is None or ex.state is not E.RESPONDING:
            return
        mode = ex.resp_mode
        if mode == "chunk":
            self._send(ex, b"%x\r\n%s\r\n" % (len(body), body))
        elif mode != "none":
            if ex.decoder is not None:
                try:
                    body = ex.decoder.feed(body)
                except ValueError as err:
                    self._server_failed(ex, str(err))
                    return
            self._send(ex, body)

    def _start_tunnel(self, ex: Exchange, side: ServerSide, status: int, reason: bytes,
                      headers: hdr.Headers) -> None:
        side.state = SERVER_NEXT[side.state]["upgraded"]
        ex.state = EXCHANGE_NEXT[ex.state]["upgraded"]
        self.state = CLIENT_NEXT[self.state]["upgraded"]
        self.svc.count_response(status)
        ex.status = status
        self._send(ex, hdr.response_head(status, reason, headers, ex.version))
        self.tunnel = side
        self.response_at = 0.0
        self.timer = ""
        if self.held:  # what the client sent after its Upgrade request belongs to the new protocol
            ex.body_in += len(self.held)
            self._to_server(side, self.held)
            self.held = b""
        if self.eof_pending:
            self.actions.append((act.EOF_SERVER, side))

    # -- 5. the end of an exchange -----------------------------------------------------------

    def _response_ended(self, ex: Exchange, side: ServerSide) -> None:
        if ex.resp_mode == "chunk":
            self._send(ex, b"0\r\n\r\n")
        elif ex.decoder is not None:
            try:
                self._send(ex, ex.decoder.flush())
            except ValueError as err:
                self._server_failed(ex, str(err))
                return
        keep = side.reusable and side.persistent and not side.leftover and ex.request_done
        ex.state = EXCHANGE_NEXT[ex.state]["end"]
        self._release(ex, keep)
        self._finish(ex)

    def _release(self, ex: Exchange, keep: bool = False, abort: bool = False) -> None:
        """Give back what the exchange holds: its server's count and its connection."""
        if self.queue and self.queue[0] is ex:
            self.response_at = 0.0
        if ex.pending is not None:
            self.actions.append((act.CANCEL_CONNECT, ex.pending))
            ex.pending = None
        if ex.backend is not None and ex.pool is not None:
            # bytes each way, for bytraffic (mod_lbmethod_bytraffic counts per request)
            ex.pool.released(ex.backend, ex.head_in + ex.body_in + ex.bytes_out)
            ex.backend = None
        if ex.state is E.DONE and not ex.recorded:
            ex.recorded = True
            self.t_ready = self.now
            self.svc.record(self, ex, self.now)
        side = ex.side
        ex.side = None
        if side is None:
            return
        side.exchange = None
        side.core = None
        if keep:
            if self.write_paused:
                self.actions.append((act.RESUME_SERVER, side))  # it was paused for this slow client
            evicted = self.svc.idle.put(side, self.now)
            if evicted is not None:
                self._close_side(evicted, abort=False)
        else:
            self._close_side(side, abort)

    def _close_side(self, side: ServerSide, abort: bool) -> None:
        if side.state is not S.CLOSED:
            side.state = SERVER_NEXT[side.state]["close"]
            self.actions.append((act.CLOSE_SERVER, side, abort))
        if side is self.tunnel:
            self.tunnel = None

    def _finish(self, ex: Exchange) -> None:
        """The exchange at the head of the queue is over: close, or go on with the next."""
        queue = self.queue
        if ex in queue:
            queue.remove(ex)
        if not ex.keep_alive:
            self._close()  # RFC 9112 §9.6: the last response on this connection
            return
        if ex.upgrade and self.state is C.SWITCHING:
            self._declined()
            return
        if queue:
            nxt = queue[0]
            if nxt.state is E.QUEUED:
                self._dispatch(nxt)  # its head is complete: it was waiting for its turn
        elif self.error is not None:
            self._write_rejection()
        elif self.state is C.HALF_CLOSED or self.draining:
            self._close()
        elif self.state is C.IDLE and self.receiving is None:
            self._arm("keepalive", self.opts.keepalive_timeout)

    def _declined(self) -> None:
        """The server answered an Upgrade request without 101: the bytes held since are
        parsed as the next request, through every check (RFC 9110 §7.8, issue 7)."""
        self.state = CLIENT_NEXT[C.SWITCHING]["declined"]
        self.parser = httptools.HttpRequestParser(self)  # llhttp stays paused after an upgrade
        self.in_state = BOUNDARY
        held, self.held = self.held, b""
        if self.eof_pending:
            self.state = CLIENT_NEXT[self.state]["eof"]
        self._arm("keepalive", self.opts.keepalive_timeout)
        if held and self.state is C.IDLE:
            self._feed(held)
        elif self.state is C.HALF_CLOSED:
            self._close()

    # -- 6. failures ------------------------------------------------------------------------

    def server_eof(self, side: ServerSide, now: float) -> None:
        """The server closed (FIN) or the connection was lost."""
        self.now = now
        ex = side.exchange
        if ex is None:
            return
        if side.state is S.TUNNEL:
            self.actions.append((act.EOF_CLIENT,))
            return
        if ex.state is E.RESPONDING and not ex.resp_framed and side.state is S.RESPONSE:
            side.state = SERVER_NEXT[side.state]["end"]  # RFC 9112 §6.3 (8): a body without framing ends at close
            side.persistent = False
            self._response_ended(ex, side)
        else:
            self._server_failed(ex, "connection closed by server")
        self._flow()

    def server_lost(self, side: ServerSide, now: float) -> None:
        self.now = now
        ex = side.exchange
        if side.state is S.TUNNEL and ex is not None:
            ex.state = EXCHANGE_NEXT[ex.state]["end"]
            self._release(ex)
            self.queue.remove(ex)
            self._close()  # what the server sent last still reaches the client
        elif ex is not None:
            self.server_eof(side, now)

    def server_write_paused(self, side: ServerSide) -> None:
        """The server does not take the upload as fast as it comes: stop reading the client,
        and from now the server must make progress within the response timeout."""
        self.server_full = True
        if not self.response_at:
            self._arm_response()
        self._flow()

    def server_write_resumed(self, side: ServerSide) -> None:
        self.server_full = False
        ex = side.exchange
        if ex is not None and not ex.request_done:
            self.response_at = 0.0  # it reads again: the upload goes on
        self._flow()

    def _server_failed(self, ex: Exchange, reason: str, status: int = 502) -> None:
        if ex.state is E.DONE:
            return
        side = ex.side
        where = ex.backend.key if ex.backend else "?"
        throttle.log(log, logging.INFO, f"failed {where}", "http: server %s failed: %s (for %s)",
                     where, reason, self.client_ip)  # one per request in an outage
        ex.termination = TIMEOUT if status == 504 else SERVER_ABORT
        if ex.state is E.RESPONDING:
            # the client already has part of a response: it must see a broken one (RFC 9112 §8)
            self._end(ex, "abort", abort=True)
            self._close(abort=True)
            return
        retry = (ex.state is E.SENT and side is not None and not side.got_bytes and not ex.retried
                 and not ex.has_body and ex.method in IDEMPOTENT and status == 502
                 and ex.pool is not None and ex.attempts <= ex.pool.config.retries)
        if retry and side is not None and ex.backend is not None and ex.pool is not None:
            # Sent again, once: idempotent (RFC 9110 §9.2.2), without a body to replay, and
            # nothing of the response came. After a reused connection failed (the server
            # closed it as it was being reused, RFC 9112 §9.3.1) the same server may be
            # chosen again; after a fresh one, another.
            ex.state = EXCHANGE_NEXT[ex.state]["retry"]
            ex.retried = True
            ex.termination = ""
            if not side.reused:
                ex.tried.append(ex.backend)
            self._release(ex, abort=True)
            self._dispatch(ex, fresh=True)
            return
        self._answer(ex, status)

    def _answer(self, ex: Exchange, status: int, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        """Answer `ex` (the head of the queue) ourselves, then close the connection."""
        self.svc.count_response(status)
        ex.status = status
        ex.keep_alive = False
        self._send(ex, error_response(status, extra=extra, head_only=ex.method == b"HEAD"))
        self._end(ex, "answer", abort=True)

    def _end(self, ex: Exchange, event: str, abort: bool = False) -> None:
        ex.state = EXCHANGE_NEXT[ex.state][event]
        self._release(ex, abort=abort)
        if event != "abort":
            self._finish(ex)

    def _cancel(self, ex: Exchange) -> None:
        """Drop an exchange that will get no answer (rejected, or its client left)."""
        if not ex.termination and not ex.status:
            ex.termination = CLIENT_ABORT
        if ex.state is not E.DONE:
            ex.state = EXCHANGE_NEXT[ex.state]["cancel"]
        # a server that got part of this request is out of step now: never reused
        self._release(ex, abort=True)
        if ex in self.queue:
            self.queue.remove(ex)

    def _reject(self, err: RequestError, event: str = "reject") -> None:
        """Bad input: answered once every earlier response is out, then the connection closes."""
        if self.state in (C.ERROR, C.CLOSED):
            return
        err.__traceback__ = None  # its frames hold this connection: no cycle through them
        self.state = CLIENT_NEXT[self.state][event]
        self.error = err
        self.timer = ""
        throttle.log(log, logging.INFO, "rejected", "http: rejected request from %s: %d %s",
                     self.client_ip, err.status, err)  # a client can send these by the thousand
        ex = self.receiving
        self.receiving = None
        termination = TIMEOUT if err.status == 408 else REJECTED
        if ex is not None:
            ex.status = err.status  # its record says how it was refused
            ex.termination = termination
            self._cancel(ex)
        else:  # refused before a request began (a PROXY header, a stalled first byte)
            self.svc.record(self, None, self.now)
        if not self.queue:
            self._write_rejection()

    def _write_rejection(self) -> None:
        err = self.error
        assert err is not None
        self.svc.count_response(err.status)
        self.to_client.append(error_response(err.status))
        self._close()

    def _send(self, ex: Exchange, data: bytes) -> None:
        ex.bytes_out += len(data)
        self.to_client.append(data)

    # -- 7. timers: values compared with the clock by the shell's sweep ---------------------------

    def _arm(self, kind: str, seconds: float) -> None:
        if seconds:
            self.timer = kind
            self.timer_at = self.now + seconds
        else:
            self.timer = ""

    def request_progress(self, pending: int, now: float) -> None:
        """The shell's count of request bytes not yet taken by the server (our buffer and the
        kernel's send queue). While it changes the server is reading the upload and is not
        late: the response timeout runs from when the request has been sent whole (issue 7
        item 14: a server reading a large upload slowly got a 504)."""
        ex = self.queue[0] if self.queue else None
        if ex is None or not self.response_at:
            return
        if pending != ex.unsent:
            self.response_at = now + self.opts.response_timeout
        ex.unsent = pending if pending or not ex.request_done else 0

    def _arm_response(self) -> None:
        if self.opts.response_timeout:
            self.response_at = self.now + self.opts.response_timeout

    def tick(self, now: float) -> None:
        """Fire the deadlines that have passed. A timeout never blames the wrong side: while
        the client is not read its head and body deadlines wait, and while the client does
        not take the response the server's does."""
        self.now = now
        if self.state is C.CLOSED:
            return
        if self.response_at:
            if self.write_paused:
                self.response_at = now + self.opts.response_timeout
            elif now >= self.response_at and self.queue:
                self.response_at = 0.0
                self._server_failed(self.queue[0], "response timeout", status=504)
        kind = self.timer
        if not kind or self.ended:
            pass
        elif kind != "keepalive" and not self.reading:
            self.timer_at = now + (self.opts.body_timeout if kind == "body" else self.opts.header_timeout)
        elif now >= self.timer_at:
            self.timer = ""
            if kind == "keepalive":
                self.state = CLIENT_NEXT[self.state]["keepalive-timeout"]
                self._close()
            else:
                self._reject(RequestError(408, f"request {kind} not received in time"), f"{kind}-timeout")
        self._flow()

    # -- 8. flow control and the close -------------------------------------------------------------

    def _flow(self) -> None:
        """Read the client only while it may send what we can take: not after its last
        request, bad input or an Upgrade, not while a pipelined request waits its turn, not
        while the server is full or a connect holds its upload."""
        want = self.state in READING and not self.server_full
        if want and self.queue:
            first = self.queue[0]
            if len(self.queue) > 1:
                want = False  # a pipelined request waits its turn (RFC 9112 §9.3.2)
            elif first.buffered and first.side is None and sum(map(len, first.buffered)) > BUFFER_LIMIT:
                want = False
        if want is not self.reading:
            self.reading = want
            self.actions.append((act.RESUME_CLIENT,) if want else (act.PAUSE_CLIENT,))

    def _close(self, abort: bool = False) -> None:
        self.state = CLIENT_NEXT[self.state]["close"]
        self._teardown(abort)

    def _teardown(self, abort: bool) -> None:
        if self.ended:
            return
        self.ended = True
        for ex in list(self.queue):
            self._cancel(ex)
        if self.receiving is not None:
            self._cancel(self.receiving)
            self.receiving = None
        if self.tunnel is not None:
            self._close_side(self.tunnel, abort)
        if self.private:
            for side in self.svc.idle.owned_by(id(self)):
                self._close_side(side, abort=False)
        self.timer = ""
        self.response_at = 0.0
        self.actions.append((act.CLOSE_CLIENT, abort))

    def take(self) -> tuple[list[bytes], list[ServerSide], list[tuple[Any, ...]]]:
        """What the shell must do now (and the core forgets): client bytes, the sides with
        bytes to write, actions."""
        out = (self.to_client, self.dirty, self.actions)
        self.to_client, self.dirty, self.actions = [], [], []
        return out
