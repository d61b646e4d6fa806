"""A playbook for the HTTP core: a script of events in and what must come out, no sockets.

    p = Playbook()
    p.client(b"GET / HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n")
    a = p.connect()                       # the core asked for a server connection: give one
    assert p.to_server(a) == b"GET / HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n"
    p.server(a, OK)
    assert p.to_client() == OK

Each step feeds one event into `ClientCore` and collects what it asked for; `to_client()`,
`to_server(side)` and `actions()` return what arrived since they were last read, so a test
reads as a conversation (in the manner of mitmproxy's playbook tests)."""

from __future__ import annotations

from typing import Any

from fulcrum.balance.base import Backend
from fulcrum.balance.pool import PoolRuntime
from fulcrum.config.model import Http, Pool
from fulcrum.proxy.http.core import actions as act
from fulcrum.proxy.http.core.connection import ClientCore
from fulcrum.proxy.http.core.server import IdleConnections, ServerSide
from fulcrum.proxy.http.exchange import Exchange
from fulcrum.proxy.http.headers import RequestEdit

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def get(path: str = "/", extra: str = "", method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: a\r\n{extra}\r\n".encode()


class FakeService:
    """The service port of the core, from real parts: a pool with its scheduler (rr), the
    idle pool, the request-head edit (forwarding headers off, so heads stay short)."""

    def __init__(self, servers: int = 2, pool: dict[str, Any] | None = None, **http: Any):
        self.opts = Http(**http)
        self.idle = IdleConnections()
        self.edit = RequestEdit("http", False, False, True)
        config = Pool(servers=[f"10.0.0.{i + 1}:80" for i in range(servers)], **(pool or {}))  # type: ignore[list-item]
        self.pool = PoolRuntime("app", config)
        self.statuses: list[int] = []
        self.records: list[tuple[int, str]] = []  # (status, termination) of each finished request

    def route(self, host: bytes | None, target: bytes) -> tuple[None, PoolRuntime]:
        return None, self.pool

    def choose(self, pool: PoolRuntime, ex: Exchange, client_ip: str,
               now: float) -> tuple[Backend, bytes | None] | None:
        backend = pool.pick(now, client=client_ip, exclude=ex.tried)
        return (backend, None) if backend is not None else None

    def hostport(self, backend: Backend) -> bytes:
        return backend.key.encode()

    def location_origins(self, backend: Backend, host: bytes | None) -> None:
        return None

    def count_response(self, status: int) -> None:
        self.statuses.append(status)

    def record(self, core: ClientCore, ex: Exchange | None, now: float) -> None:
        self.records.append((ex.status, ex.termination) if ex is not None else (-1, "before a request"))


class Playbook:
    def __init__(self, servers: int = 2, pool: dict[str, Any] | None = None, **http: Any):
        self.svc = FakeService(servers, pool, **http)
        self.now = 0.0
        self.core = ClientCore(self.svc, self.now, ("192.0.2.7", 40000))
        self._client = bytearray()
        self._servers: dict[int, bytearray] = {}
        self._actions: list[tuple[Any, ...]] = []
        self.closed: bool | None = None  # None: open; else whether it was an abort
        self.reading = True
        self.closed_sides: dict[int, bool] = {}  # id(side) -> aborted
        self.eof_to_server: set[int] = set()
        self.eof_to_client = False

    # -- events ------------------------------------------------------------------------

    def client(self, data: bytes) -> Playbook:
        self.core.client_data(data, self.now)
        return self._collect()

    def client_eof(self) -> Playbook:
        self.core.client_eof(self.now)
        return self._collect()

    def client_lost(self) -> Playbook:
        self.core.client_lost()
        return self._collect()

    def drain(self) -> Playbook:
        self.core.drain()
        return self._collect()

    def client_write_paused(self) -> Playbook:
        self.core.client_write_paused()
        return self._collect()

    def wait(self, seconds: float) -> Playbook:
        """Time passes; the sweep calls tick()."""
        self.now += seconds
        self.core.tick(self.now)
        return self._collect()

    def connect(self) -> ServerSide:
        """Answer the core's last CONNECT with a new connection."""
        ex, backend, owner = self._pending_connect()
        side = ServerSide(backend, owner)
        assert self.core.server_connected(ex, side, self.now)
        self._collect()
        return side

    def refuse(self, reason: str = "refused") -> Playbook:
        ex, backend, _ = self._pending_connect()
        self.core.connect_failed(ex, backend, reason, self.now)
        return self._collect()

    def short(self, give_up_after: float = 3.0) -> Playbook:
        """The shell could not connect for want of descriptors (EMFILE)."""
        ex, backend, _ = self._pending_connect()
        self.core.connect_short(ex, backend, self.now, give_up_after)
        return self._collect()

    def retry_connect(self) -> Playbook:
        """The shell's RETRY_CONNECT timer fired."""
        for i in range(len(self._actions) - 1, -1, -1):
            if self._actions[i][0] == act.RETRY_CONNECT:
                _, ex, delay = self._actions.pop(i)
                self.now += delay
                self.core.retry_connect(ex, self.now)
                return self._collect()
        raise AssertionError(f"no retry asked for; actions: {self._actions}")

    def server(self, side: ServerSide, data: bytes) -> Playbook:
        self.core.server_data(side, data, self.now)
        return self._collect()

    def server_eof(self, side: ServerSide) -> Playbook:
        self.core.server_eof(side, self.now)
        return self._collect()

    def server_lost(self, side: ServerSide) -> Playbook:
        self.core.server_lost(side, self.now)
        return self._collect()

    # -- what came out -----------------------------------------------------------------

    def to_client(self) -> bytes:
        out = bytes(self._client)
        self._client.clear()
        return out

    def to_server(self, side: ServerSide) -> bytes:
        buf = self._servers.get(id(side), bytearray())
        out = bytes(buf)
        buf.clear()
        return out

    def actions(self) -> list[tuple[Any, ...]]:
        out = self._actions
        self._actions = []
        return out

    def connects(self) -> int:
        return sum(1 for a in self._actions if a[0] == act.CONNECT)

    def side_closed(self, side: ServerSide) -> bool | None:
        """None: open; else whether it was reset."""
        return self.closed_sides.get(id(side))

    def _pending_connect(self) -> tuple[Exchange, Backend, int]:
        for i in range(len(self._actions) - 1, -1, -1):
            if self._actions[i][0] == act.CONNECT:
                _, ex, backend, owner = self._actions.pop(i)
                return ex, backend, owner
        raise AssertionError(f"the core asked for no connection; actions: {self._actions}")

    def _collect(self) -> Playbook:
        to_client, dirty, actions = self.core.take()
        if self.closed is not None:
            assert not to_client, "bytes for a closed client"
        self._client += b"".join(to_client)
        for side in dirty:
            self._servers.setdefault(id(side), bytearray()).extend(b"".join(side.out))
            side.out.clear()
        for action in actions:
            kind = action[0]
            if kind == act.CLOSE_CLIENT:
                self.closed = action[1]
            elif kind == act.CLOSE_SERVER:
                self.closed_sides[id(action[1])] = action[2]
            elif kind == act.PAUSE_CLIENT:
                self.reading = False
            elif kind == act.RESUME_CLIENT:
                self.reading = True
            elif kind == act.EOF_SERVER:
                self.eof_to_server.add(id(action[1]))
            elif kind == act.EOF_CLIENT:
                self.eof_to_client = True
        self._actions += actions
        return self
