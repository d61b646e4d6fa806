"""One request and its response, as the core tracks them, and the error that rejects a request."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fulcrum.balance.base import Backend
from fulcrum.balance.pool import PoolRuntime
from fulcrum.proxy.http.core.states import ExchangeState
from fulcrum.proxy.http.headers import Headers

if TYPE_CHECKING:
    from fulcrum.proxy.http.core.server import ServerSide


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
                 "retried", "head_bytes", "options", "cookies", "pending", "started")

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
        self.started = now
