"""One request and its response as the core (core/connection.py) tracks them, and the error
that rejects a request. Pure."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fulcrum.balance.base import Backend
from fulcrum.balance.pool import PoolRuntime
from fulcrum.proxy.http.codings import Decoder
from fulcrum.proxy.http.core.states import ExchangeState
from fulcrum.proxy.http.headers import Headers

if TYPE_CHECKING:
    from fulcrum.proxy.http.core.server import ServerSide
    from fulcrum.proxy.http.routing import RouteRule


class RequestError(Exception):
    """Raised from a request parser callback: answer `status` and close."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


class Exchange:
    """One request and its response."""

    __slots__ = ("state", "method", "target", "version", "headers", "host", "keep_alive",
                 "upgrade", "chunked", "has_body", "buffered", "request_done", "pool",
                 "backend", "side", "tried", "set_cookie", "resp_mode", "resp_framed",
                 "retried", "head_bytes", "options", "cookies", "pending",
                 # for its Observation (observe.py, built by record.py)
                 "rule", "server_key", "attempts", "status", "termination", "started",
                 "wait_request", "connect_time", "t_sent", "t_response", "head_in", "body_in",
                 "bytes_out", "recorded", "codings", "decoder", "unsent", "first_attempt")

    def __init__(self, now: float):
        self.state = ExchangeState.HEAD
        self.method = b""
        self.target = b""
        self.version = b"1.1"
        self.headers: Headers = []
        self.host: bytes | None = None
        self.keep_alive = True
        self.upgrade = False
        self.chunked = False
        self.has_body = False
        self.buffered: list[bytes] = []  # framed request bytes that arrived before a server did
        self.request_done = False  # the whole request was read from the client
        self.pool: PoolRuntime | None = None
        self.backend: Backend | None = None  # taken from the pool (counted) while set
        self.side: ServerSide | None = None  # the server connection carrying it
        self.tried: list[Backend] = []  # servers that failed it
        self.set_cookie: bytes | None = None
        self.resp_mode = ""  # to the client: "length" | "chunk" | "raw" | "none"
        self.resp_framed = False  # the server framed its body (Content-Length or chunked)
        self.retried = False
        self.head_bytes = b""  # the request head as sent, kept for one retry
        self.options: set[bytes] | None = None  # what the client's Connection field names
        self.cookies: list[bytes] = []  # Cookie field values
        self.pending: object = None  # the shell's handle on a connect in progress
        self.rule: RouteRule | None = None  # the route that chose the pool (None: the default)
        self.server_key: str | None = None  # the server that was sent the request, last
        self.attempts = 0  # servers the request was sent or connected to
        self.status = 0  # sent to the client (0: none)
        self.termination = ""  # why it ended early; "" = normally (observe.py's words)
        self.started = now  # its first byte
        self.wait_request: float | None = None  # connection ready or last response -> whole head
        self.connect_time: float | None = None  # None: a reused connection (or none)
        self.t_sent = 0.0  # its head went to the server
        self.t_response = 0.0  # the first response byte arrived
        self.head_in = 0  # bytes of its head (request line and fields)
        self.body_in = 0  # body bytes (decoded from chunks), or tunnelled bytes after a 101
        self.bytes_out = 0  # written to the client for it
        self.recorded = False
        self.codings: bytes | None = None  # the request's Transfer-Encoding, if more than chunked
        self.decoder: Decoder | None = None  # undoes the response's transfer codings (HTTP/1.0 client)
        self.unsent = -1  # request bytes the server had not taken at the last sweep; 0 = all sent
        self.first_attempt: float | None = None  # when a connect our own shortage delayed was first tried
