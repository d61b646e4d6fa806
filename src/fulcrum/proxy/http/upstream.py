"""The server side's asyncio shell: one per server connection, around the core's
`ServerSide` (core/server.py), which holds its response parser and state. Bytes and events
from the server go to the client connection's core that holds it; while it idles in the pool
no core holds it, and any byte or FIN then closes it (issue 7 item 3: bytes before a request
would be read as its response)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from fulcrum.proxy.http.core.server import ServerSide
from fulcrum.proxy.http.core.states import ServerState

if TYPE_CHECKING:
    from fulcrum.proxy.http.service import HttpService

WRITE_HIGH_WATER = 256 * 1024
WRITE_LOW_WATER = 64 * 1024


class Upstream(asyncio.Protocol):
    __slots__ = ("side", "svc", "transport", "closed")

    def __init__(self, side: ServerSide, svc: HttpService):
        self.side = side
        side.io = self
        self.svc = svc
        self.transport: Any = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(WRITE_HIGH_WATER, WRITE_LOW_WATER)  # type: ignore[attr-defined]

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        side = self.side
        core = side.core
        if core is None:  # idle, or let go: a server must not talk between responses
            self.svc.idle.drop(side)
            self.close()
            return
        core.server_data(side, data, self.svc.ctx.loop.time())
        if core.io is not None:
            core.io.touched = True
            core.io.run()

    def eof_received(self) -> bool:
        side = self.side
        core = side.core
        if core is None:
            self.svc.idle.drop(side)
            return False
        core.server_eof(side, self.svc.ctx.loop.time())
        if core.io is not None:
            core.io.run()
        return side.state is ServerState.TUNNEL  # a tunnel stays open for the other direction

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        side = self.side
        core = side.core
        if core is not None:
            core.server_lost(side, self.svc.ctx.loop.time())
            if core.io is not None:
                core.io.run()
        else:
            self.svc.idle.drop(side)
        side.parser = None  # parser <-> side is a cycle; no more data comes now
        side.io = None
        self.transport = None

    def pause_writing(self) -> None:
        core = self.side.core
        if core is not None:
            core.server_write_paused(self.side)
            if core.io is not None:
                core.io.run()

    def resume_writing(self) -> None:
        core = self.side.core
        if core is not None:
            core.server_write_resumed(self.side)
            if core.io is not None:
                core.io.run()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
