"""One request and its response as the proxy tracks them, and the error that rejects a request."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from fulcrum.balance.base import Backend
from fulcrum.balance.pool import PoolRuntime
from fulcrum.proxy.http.codings import Decoder
from fulcrum.proxy.http.headers import Headers

if TYPE_CHECKING:
    from fulcrum.proxy.http.routing import RouteRule
    from fulcrum.proxy.http.server import HttpConnection
    from fulcrum.proxy.http.upstream import Upstream


class RequestError(Exception):
    """Raised from a parser callback: answer `status` and close."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


class Exchange:
    """One request and its response."""

    __slots__ = ("conn", "method", "target", "version", "headers", "host", "keep_alive",
                 "upgrade", "chunked", "has_body", "buffered", "request_done", "pool",
                 "backend", "upstream", "tried", "set_cookie",
                 "resp_mode", "resp_framed", "resp_status", "sent_head", "connecting", "retried",
                 "finished", "head_bytes", "up_out", "options", "cookies",
                 # for its Observation (observe.py, built by record.py)
                 "rule", "server_key", "attempts", "termination", "t_begin", "wait_request",
                 "connect_time", "t_sent", "t_response", "head_in", "body_in", "out_mark",
                 "codings", "decoder", "unsent", "first_attempt")

    def __init__(self, conn: HttpConnection):
        self.conn = conn
        self.method = b""
        self.target = b""
        self.version = b"1.1"
        self.headers: Headers = []
        self.host: bytes | None = None
        self.keep_alive = True
        self.upgrade = False
        self.chunked = False
        self.has_body = False
        self.buffered: list[bytes] | None = []  # framed request bytes not yet written; None = streaming
        self.request_done = False
        self.pool: PoolRuntime | None = None
        self.backend: Backend | None = None
        self.upstream: Upstream | None = None
        self.tried: list[Backend] = []
        self.set_cookie: bytes | None = None
        self.resp_mode = ""  # to the client: "length" | "chunk" | "raw" | "none"
        self.resp_framed = False  # the server framed its body (Content-Length or chunked)
        self.resp_status = 0
        self.sent_head = False  # a final response head went to the client
        self.connecting: asyncio.Task[None] | asyncio.TimerHandle | None = None  # or waiting to retry
        self.retried = False
        self.finished = False
        self.head_bytes = b""  # the request head as sent, kept for one retry
        self.up_out: list[bytes] = []  # bytes for the server held while the connection is corked
        self.options: set[bytes] | None = None  # what the client's Connection field names
        self.cookies: list[bytes] = []  # Cookie field values
        self.rule: RouteRule | None = None  # the route that chose the pool (None: the default)
        self.server_key: str | None = None  # the server that was sent the request, last
        self.attempts = 0  # servers the request was sent or connected to
        self.termination = ""  # why it ended early; "" = normally (observe.py's words)
        self.t_begin = 0.0  # loop time of its first byte
        self.wait_request: float | None = None  # connection ready or last response -> whole head
        self.connect_time: float | None = None  # None: a reused connection (or none)
        self.t_sent = 0.0  # its head went to the server
        self.t_response = 0.0  # the first response byte arrived
        self.head_in = 0  # bytes of its head (request line and fields)
        self.body_in = 0  # body bytes (decoded from chunks), or tunnelled bytes after a 101
        self.out_mark = -1  # the connection's bytes_out when its response began (-1: none)
        self.codings: bytes | None = None  # the request's Transfer-Encoding, if more than chunked
        self.decoder: Decoder | None = None  # undoes the response's transfer codings (HTTP/1.0 client)
        self.first_attempt = 0.0  # loop time of a connect our own shortage delayed (0: none)
        self.unsent = -1  # request bytes not yet taken by the server at the last sweep; 0 = all sent
