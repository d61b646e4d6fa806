"""The core's side of one server connection (its response parser and state), and the idle
pool that keeps such connections between requests. Pure: the shell (upstream.py) owns the
socket and writes what `out` collects.

The response parser's callbacks only record what they saw and hand it to the client
connection's core (`ClientCore`), which decides; the end of a response is acted on after the
whole read is parsed, so bytes the server sent after a complete response are seen first and
the connection is closed instead of reused (RFC 9112 §9.3: a response ends where its framing
says; anything after it would be read as the next client's response)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httptools

from fulcrum.balance.base import Backend
from fulcrum.proxy.http import headers as hdr
from fulcrum.proxy.http.core.states import SERVER_NEXT, ServerState

if TYPE_CHECKING:
    from fulcrum.proxy.http.core.connection import ClientCore
    from fulcrum.proxy.http.exchange import Exchange

IDLE_PER_SERVER = 64  # idle keep-alive connections kept per server
IDLE_SECONDS = 4.0  # below Apache's 5 s KeepAliveTimeout, so we rarely reuse a dying one
MAX_RESPONSE_HEAD = 1024 * 1024  # a broken server must not grow us without bound


class Leftover(Exception):
    """A second response began on a connection whose response had ended."""


class ServerSide:
    __slots__ = ("backend", "owner", "state", "parser", "exchange", "core", "reused", "out",
                 "io", "head_fed", "head_buf", "head_lines", "feeding", "cursor", "got_bytes",
                 "leftover", "reusable", "idle_since", "persistent")

    def __init__(self, backend: Backend, owner: int = 0):
        self.backend = backend
        self.owner = owner  # nonzero: private to one client connection (it carries a PROXY header)
        self.state = ServerState.CONNECTING
        self.parser: Any = httptools.HttpResponseParser(self)
        self.exchange: Exchange | None = None
        self.core: ClientCore | None = None
        self.reused = False
        self.out: list[bytes] = []  # bytes for the server, written by the shell
        self.io: Any = None  # the shell's protocol object
        self.head_fed = 0  # bytes fed while a response head is incomplete (0: none is)
        self.head_buf = bytearray()  # the start of a head cut by a read
        self.head_lines = 0  # line ends in head_buf
        self.feeding = b""  # the read being parsed (ClientCore.server_data)
        self.cursor = 0  # where in it the head being read began
        self.got_bytes = False  # any response byte for the current exchange
        self.leftover = False  # bytes after a complete response: never reuse
        self.reusable = True  # False: this response leaves the connection unusable (HEAD, upgrade)
        self.idle_since = 0.0
        self.persistent = False  # the response just ended allows another (RFC 9112 §9.3)

    def move(self, event: str) -> None:
        # the compiled table (a dict lookup, no call), as ClientCore moves its states
        self.state = SERVER_NEXT[self.state][event]

    # -- response parser callbacks (httptools) -----------------------------------------
    # llhttp checks the whole head (status line, field syntax, CR LF, framing fields); no
    # callback per field or for the status: the head is cut and split with bytes operations
    # once llhttp has read it (headers.py), which costs far fewer Python calls.

    def on_message_begin(self) -> None:
        if self.state is ServerState.DONE:
            self.leftover = True
            raise Leftover
        self.head_fed = 1

    def on_headers_complete(self) -> None:
        self.head_fed = 0
        pending = self.head_buf
        if pending:  # the head began in an earlier read
            base = len(pending)
            reason, fields, end = hdr.cut_response_head(bytes(pending) + self.feeding, 0)
            self.head_buf = bytearray()
            self.head_lines = 0
        else:
            base = 0
            reason, fields, end = hdr.cut_response_head(self.feeding, self.cursor)
        self.cursor = end - base  # a final response may follow a 1xx in the same read
        assert self.core is not None
        self.core.response_head(self, self.parser.get_status_code(), reason, fields)

    def on_body(self, body: bytes) -> None:
        if body and self.core is not None:
            self.core.response_body(self, body)

    def on_message_complete(self) -> None:
        if self.state is ServerState.RESPONSE:
            self.persistent = self.parser.should_keep_alive()  # only valid inside this callback
            self.state = SERVER_NEXT[self.state]["end"]  # acted on once the read is parsed (ClientCore.server_data)

    def head_incomplete(self, data: bytes) -> bool:
        """After a read that left a response head incomplete: keep its start for
        `on_headers_complete`. False: the head is over the bounds (MAX_RESPONSE_HEAD bytes,
        MAX_RESPONSE_FIELDS lines), refused without waiting for its end."""
        piece = data[self.cursor:] if not self.head_buf else data
        self.head_buf += piece
        self.head_fed += len(data)
        self.head_lines += piece.count(b"\n")
        return self.head_fed <= MAX_RESPONSE_HEAD and self.head_lines <= hdr.MAX_RESPONSE_FIELDS + 1


class IdleConnections:
    """Idle keep-alive connections per (server, owner), most recently used first out. Stale
    ones are left for `expired()`, which the service's sweep calls."""

    def __init__(self) -> None:
        self.stacks: dict[tuple[str, int], list[ServerSide]] = {}

    def __bool__(self) -> bool:
        return any(self.stacks.values())

    def get(self, backend: Backend, now: float, owner: int = 0) -> ServerSide | None:
        stack = self.stacks.get((backend.key, owner))
        if stack and now - stack[-1].idle_since <= IDLE_SECONDS:
            side = stack.pop()
            side.state = SERVER_NEXT[side.state]["take"]
            side.reused = True
            return side
        return None

    def put(self, side: ServerSide, now: float) -> ServerSide | None:
        """Keep `side`; returns the oldest connection of its server when that overflows."""
        side.state = SERVER_NEXT[side.state]["reuse"]
        side.idle_since = now
        side.got_bytes = False
        side.reusable = True
        stack = self.stacks.get((side.backend.key, side.owner))
        if stack is None:
            stack = self.stacks[(side.backend.key, side.owner)] = []
        stack.append(side)
        if len(stack) > IDLE_PER_SERVER:
            return stack.pop(0)
        return None

    def forget(self, side: ServerSide) -> None:
        stack = self.stacks.get((side.backend.key, side.owner))
        if stack and side in stack:
            stack.remove(side)
            if not stack and side.owner:
                del self.stacks[(side.backend.key, side.owner)]

    def drop(self, side: ServerSide) -> None:
        """The server sent bytes or FIN while idle: it is not reused (issue 7: bytes before a
        request would be read as its response; RFC 9112 §9.3.1: a server may close an idle
        connection). The caller closes the socket."""
        self.forget(side)
        if side.state is ServerState.IDLE:
            side.move("close")

    def expired(self, now: float) -> list[ServerSide]:
        """Connections idle too long, removed from the pool and closed: the caller closes
        their sockets."""
        out = []
        for stack in self.stacks.values():
            while stack and now - stack[0].idle_since > IDLE_SECONDS:
                side = stack.pop(0)
                side.move("close")
                out.append(side)
        return out

    def owned_by(self, owner: int) -> list[ServerSide]:
        """A client connection ended: its private server connections, removed from the pool."""
        out = []
        for key in [k for k in self.stacks if k[1] == owner]:
            out += self.stacks.pop(key)
        return out
