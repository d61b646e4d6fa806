"""What every connection of one http service shares, resolved once per (re)load: the router,
stickiness helpers, the idle server connections, and the request-head recipe."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from typing import TYPE_CHECKING

from fulcrum.balance.base import Backend
from fulcrum.balance.pool import PoolRuntime
from fulcrum.config.types import join_host_port
from fulcrum.proxy.context import ServiceContext
from fulcrum.proxy.http import headers as hdr
from fulcrum.proxy.http import sticky
from fulcrum.proxy.http.core.server import IdleConnections
from fulcrum.proxy.http.record import observe
from fulcrum.proxy.http.routing import Router, RouteRule
from fulcrum.proxy.http.settings import HttpSettings

if TYPE_CHECKING:
    from fulcrum.proxy.http.core.connection import ClientCore
    from fulcrum.proxy.http.exchange import Exchange
    from fulcrum.proxy.http.server import HttpConnection


class HttpService:
    def __init__(self, ctx: ServiceContext, tls: bool = False):
        self.ctx = ctx
        http = ctx.config.http
        self.opts = HttpSettings(http)  # what each request reads, out of the model once
        self.tls = tls
        self.proto = "https" if tls else "http"
        self.pools: dict[str, PoolRuntime] = ctx.pools or {ctx.pool.name: ctx.pool}
        self.router = Router(
            (RouteRule(r.host.lower().encode() if r.host else None, r.path.encode(), r.pool)
             for r in http.routes),
            ctx.pool.name)
        self.idle = IdleConnections()
        self.responses: dict[int, int] = {}  # status -> answers, for metrics
        self._cookies: dict[str, sticky.InsertCookie] = {}
        self.edit = hdr.RequestEdit(self.proto, http.x_forwarded, http.forwarded, http.preserve_host)
        self._hostports: dict[str, bytes] = {}
        self.public_origins: dict[bytes | None, bytes] = {}
        self._client_tls: dict[str, ssl.SSLContext] = {}
        self._origins: dict[str, tuple[bytes, ...]] = {}
        self.live: set[HttpConnection] = set()
        self.sweeper: asyncio.TimerHandle | None = None
        timeouts = [t for t in (self.opts.header_timeout, self.opts.body_timeout,
                                self.opts.keepalive_timeout, self.opts.response_timeout) if t]
        self.sweep_every = min(1.0, max(0.05, min(timeouts, default=4.0) / 4))
        self.trusted_proxies = [ipaddress.ip_network(n, strict=False) for n in http.accept_proxy_protocol]

    def client_tls(self, pool: PoolRuntime) -> ssl.SSLContext | None:
        """The TLS context for connections to the pool's servers (None: plain HTTP)."""
        config = pool.config
        if not config.tls:
            return None
        context = self._client_tls.get(pool.name)
        if context is None:
            context = ssl.create_default_context(cafile=config.tls_ca)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            if not config.tls_verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            context.set_alpn_protocols(["http/1.1"])
            self._client_tls[pool.name] = context
        return context

    # -- the deadline sweep: every connection's timeouts, checked together ----------------

    def watch(self, conn: HttpConnection) -> None:
        self.live.add(conn)
        if self.sweeper is None:
            self.sweeper = self.ctx.loop.call_later(self.sweep_every, self.sweep)

    def unwatch(self, conn: HttpConnection) -> None:
        self.live.discard(conn)

    def sweep(self) -> None:
        """Fire the deadlines that have passed; at most `sweep_every` late, which is a
        quarter of the shortest timeout (a timer wheel in one line, in effect). Server
        connections idle too long are closed too, so a pool nobody draws from (an old
        configuration's, after a reload) does not hold them open."""
        self.sweeper = None
        now = self.ctx.loop.time()
        for conn in list(self.live):
            conn.check_deadlines(now)
        for side in self.idle.expired(now):
            if side.io is not None:
                side.io.close()
        if self.live or self.idle:
            self.sweeper = self.ctx.loop.call_later(self.sweep_every, self.sweep)

    def record(self, core: ClientCore, ex: Exchange | None, now: float) -> None:
        observe(self.ctx.observer, self.ctx.name, core, ex, now)

    def count_response(self, status: int) -> None:
        responses = self.responses
        responses[status] = responses.get(status, 0) + 1

    # -- choosing a server ---------------------------------------------------------------

    def route(self, host: bytes | None, target: bytes) -> tuple[RouteRule | None, PoolRuntime]:
        """The route that matches (None: the default) and the pool it names."""
        rule = self.router.rule_for(host, target)
        return rule, (self.pools.get(rule.pool) if rule is not None else None) or self.ctx.pool

    def insert_cookie(self, pool: PoolRuntime) -> sticky.InsertCookie:
        maker = self._cookies.get(pool.name)
        if maker is None:
            secret = pool.config.sticky.secret
            key = secret.encode() if secret else sticky.derived_secret(pool.name, pool.backends)
            maker = self._cookies[pool.name] = sticky.InsertCookie(pool.name, key)
        return maker

    def choose(self, pool: PoolRuntime, ex: Exchange, client_ip: str,
               now: float) -> tuple[Backend, bytes | None] | None:
        """(server, Set-Cookie value or None), or None when no server may take the request."""
        if not pool.sticky_http:  # (per request: no read of the model when no cookie is involved)
            backend = pool.pick(now, client=client_ip, exclude=ex.tried)
            return (backend, None) if backend is not None else None
        policy = pool.config.sticky
        pinned: Backend | None = None
        asked = False  # the request named a server
        if policy.mode == "cookie":
            names = [n.encode() for n in policy.cookie.split("|") if n]
            route = sticky.route_from_request(names, ex.cookies, ex.target)
            if route is not None:
                asked = True
                pinned = sticky.backend_by_route(pool.backends, route)
        elif policy.mode == "insert":
            values = sticky.cookie_values(ex.cookies, policy.cookie.encode())
            maker = self.insert_cookie(pool)
            for value in values:
                asked = True
                pinned = maker.backend_for(value, pool.backends)
                if pinned is not None:
                    break
        if pinned is not None and pinned not in ex.tried and pool.usable(pinned, now, sticky=True):
            return pinned, None
        if asked and policy.nofailover and pinned is not None:
            return None  # mod_proxy_balancer nofailover: the session lives on that server only
        backend = pool.pick(now, client=client_ip, exclude=ex.tried)
        if backend is None:
            return None
        cookie = None
        if policy.mode == "insert":
            value = self.insert_cookie(pool).value_for(backend)
            cookie = sticky.set_cookie(policy.cookie.encode(), value, self.tls,
                                       policy.samesite, policy.max_age)
        return backend, cookie

    # -- request and response edits ---------------------------------------------------------

    def hostport(self, backend: Backend) -> bytes:
        value = self._hostports.get(backend.key)
        if value is None:
            value = self._hostports[backend.key] = join_host_port(backend.address, backend.port).encode()
        return value

    def server_origins(self, backend: Backend) -> tuple[bytes, ...]:
        """The URL prefixes by which a server names itself (for ProxyPassReverse)."""
        origins = self._origins.get(backend.key)
        if origins is None:
            hostport = self.hostport(backend).lower()
            found = [b"http://" + hostport, b"https://" + hostport]
            if backend.port == 80:
                found.append(b"http://" + backend.address.encode().lower())
            origins = self._origins[backend.key] = tuple(found)
        return origins

    def location_origins(self, backend: Backend, host: bytes | None) -> tuple[tuple[bytes, ...], bytes]:
        """(the server's own origins, the client's origin) for rewriting Location."""
        public = self.public_origins.get(host)
        if public is None:
            public = self.public_origin(host)
        return self.server_origins(backend), public

    def public_origin(self, host: bytes | None) -> bytes:
        """The URL prefix the client used (ProxyPassReverse target), remembered per Host."""
        origin = self.proto.encode() + b"://" + (host or b"localhost")
        if len(self.public_origins) < 1024:  # bounded: Host is chosen by clients
            self.public_origins[host] = origin
        return origin
