"""What every part of a client connection shares: its state, the writes it corks, the reads it
blocks and the deadlines it arms.

`HttpConnection` (server.py) is assembled from this base and two halves of the exchange:
`Dispatcher` (dispatch.py: a request on its way to a server) and `Responder` (response.py: the
answer on its way back). They are mixins of one class, not objects that call each other, so a
request costs no extra hop: every call is still a method of the connection. The state lives
here, in one `__slots__`, because only one base of a slotted class may lay out slots.
"""

from __future__ import annotations

import asyncio
import fcntl
import socket
import struct
import termios
from typing import TYPE_CHECKING, Any

import httptools

from fulcrum.proxy.context import ServiceContext
from fulcrum.proxy.http.exchange import Exchange, RequestError
from fulcrum.proxy.http.framing import ChunkedBody
from fulcrum.proxy.http.service import HttpService
from fulcrum.proxy.http.upstream import Upstream

WRITE_HIGH_WATER = 256 * 1024
WRITE_LOW_WATER = 64 * 1024
BOUNDARY, HEAD, LENGTH, CHUNKED = range(4)  # ConnectionBase.in_state
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


class ConnectionBase(asyncio.Protocol):
    """The state of a client connection to an http service, and the primitives on it."""

    __slots__ = ("svc", "ctx", "opts", "transport", "client_ip", "client_ip_bytes", "client_addr",
                 "local_addr", "proxy_header", "parser", "queue", "receiving", "error", "blockers",
                 "write_paused", "closed", "client_eof", "tunnel", "head_fed", "url_len",
                 "header_bytes", "deadline", "deadline_kind", "timer", "touched", "idle_ticks",
                 "proto", "corked", "out", "up_dirty", "resp_deadline", "private", "held",
                 "bytes_out", "t_ready", "stopping",
                 "in_state", "in_left", "in_partial", "head_tail", "chunks", "method_override", "head_done")

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
        # Bytes that followed an Upgrade request's head, held until the server answers: after
        # its 101 they are the new protocol's, after any other answer the next request's
        # (issue 7 item 1: never forwarded before the 101, RFC 9110 §7.8).
        self.held: bytes | None = None
        self.bytes_out = 0  # written to the client, for each request's Observation
        self.t_ready = 0.0  # loop time of the connection's start or its last response's end
        self.stopping = False  # the node is stopping: the last response says Connection: close
        # Request framing beside llhttp (server.py _parse, framing.py): where the input is
        self.in_state = BOUNDARY  # BOUNDARY (before a request), HEAD, LENGTH or CHUNKED body
        self.in_left = 0  # LENGTH: body bytes still to come
        self.in_partial = b""  # the start of a method split across reads
        self.head_tail = b""  # HEAD: the last bytes fed, to find a CRLF CRLF cut by a read
        self.chunks: ChunkedBody | None = None  # CHUNKED: the decoder
        self.method_override: bytes | None = None  # a method llhttp was shown as GET
        self.head_done = False  # llhttp completed the head just fed

    if TYPE_CHECKING:  # defined by the mixins (dispatch.py, response.py) that complete the class
        def dispatch(self, ex: Exchange, fresh: bool = False) -> None: ...
        def server_failed(self, ex: Exchange, reason: str, status: int = 502) -> None: ...
        def local_response(self, ex: Exchange, status: int,
                           extra: list[tuple[bytes, bytes]] | None = None) -> None: ...
        def _release(self, ex: Exchange, keep_upstream: bool = False) -> None: ...
        def _finish(self, ex: Exchange, keep_upstream: bool) -> None: ...
        # and by HttpConnection (server.py)
        def close(self, abort: bool = False, reason: str = "client_abort") -> None: ...
        def replay_after_declined_upgrade(self) -> None: ...
        def _drop(self, ex: Exchange) -> None: ...
        def abort(self, reason: str = "shutdown") -> None: ...

    # -- writes, corked while a read is parsed ------------------------------------------

    def _to_client(self, data: bytes) -> None:
        self.bytes_out += len(data)
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

    # -- timeouts: deadlines kept here, checked by the service's sweep (service.py) ---------
    # No timer per connection or request: a deadline is a float set on events, and the
    # service looks at all of them a few times per shortest timeout (check_deadlines, server.py).

    def _arm_response(self, now: float) -> None:
        if self.opts.response_timeout:
            self.resp_deadline = now + self.opts.response_timeout

    def server_activity(self, ex: Exchange) -> None:
        self.touched = True  # for the node's idle sweep: a long download is not idle
        if self.resp_deadline:
            self.resp_deadline = self.ctx.loop.time() + self.opts.response_timeout

    # -- client-side timers (head 408, body 408, keep-alive idle) ----------------------

    def _arm(self, kind: str, seconds: float) -> None:
        if kind == "none" or not seconds:
            self.deadline_kind = ""
            return
        self.deadline_kind = kind
        self.deadline = self.ctx.loop.time() + seconds
