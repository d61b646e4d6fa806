"""A request on its way to a server: choosing the pool and the server, connecting (or taking an
idle connection), sending the head and body, and deciding after a failure whether the request
may be sent again (RFC 9110 §9.2.2) or is answered by the proxy itself.

A mixin of `HttpConnection` (see connection.py for why a mixin).
"""

from __future__ import annotations

import asyncio
import logging

from fulcrum.balance.base import Backend
from fulcrum.balance.pool import PoolRuntime
from fulcrum.logs import throttle
from fulcrum.observe import CONNECT_FAILED, LIMIT, NO_SERVER, SERVER_ABORT, TIMEOUT
from fulcrum.proxy.http import proxyproto
from fulcrum.proxy.http.connection import WRITE_HIGH_WATER, WRITE_LOW_WATER, ConnectionBase
from fulcrum.proxy.http.exchange import Exchange
from fulcrum.proxy.http.responses import redirect_response
from fulcrum.proxy.http.upstream import Upstream
from fulcrum.proxy.resources import GATE, local_exhaustion
from fulcrum.proxy.tcp import SHORTAGE_RETRY

log = logging.getLogger("fulcrum.http")

IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})


class Dispatcher(ConnectionBase):
    __slots__ = ()

    def dispatch(self, ex: Exchange, fresh: bool = False) -> None:
        """Choose a server for the exchange at the head of the queue and send it there."""
        svc = self.svc
        if self.opts.redirect_https:
            ex.resp_status, ex.out_mark = 308, self.bytes_out
            self._to_client(redirect_response(b"https://" + (ex.host or b"localhost") + ex.target))
            svc.count_response(308)
            ex.sent_head = ex.keep_alive = False
            self._finish(ex, keep_upstream=False)
            return
        now = self.ctx.loop.time()
        if ex.pool is None:
            ex.rule = rule = svc.router.rule_for(ex.host, ex.target)
            ex.pool = (svc.pools.get(rule.pool) if rule is not None else None) or self.ctx.pool
        pool = ex.pool
        choice = svc.choose(pool, ex, self.client_ip, now)
        if choice is None:
            if ex.retried:  # the server we retried after failed us: that failure is the answer
                ex.termination = SERVER_ABORT
                self.local_response(ex, 502)
            else:
                ex.termination = CONNECT_FAILED if ex.tried else NO_SERVER
                self.local_response(ex, 503, [(b"Retry-After", b"%d" % self.opts.retry_after)])
            return
        backend, ex.set_cookie = choice
        ex.backend = backend
        ex.server_key = backend.key
        ex.attempts += 1
        pool.taken(backend)
        ex.head_bytes = svc.edit.head(ex.method, ex.target, ex.headers, self.client_ip_bytes, ex.host,
                                      svc.hostport(backend), ex.options, ex.upgrade, ex.chunked,
                                      ex.codings)
        up = None if fresh else svc.idle.get(backend, now, self._owner(pool))
        if up is not None:
            self._attach(ex, up)
        else:
            ex.connecting = self.ctx.loop.create_task(self._connect(ex, backend))

    def _owner(self, pool: PoolRuntime) -> int:
        """Server connections that start with a PROXY header describe one client: private."""
        if pool.config.proxy_protocol == "none":
            return 0
        if not self.private:
            self.private = True
            if self.proxy_header is None and self.local_addr[1] == 0:  # not told by a PROXY header
                local = self.transport.get_extra_info("sockname")
                self.local_addr = (local[0], local[1])
        return id(self)

    async def _connect(self, ex: Exchange, backend: Backend) -> None:
        loop = self.ctx.loop
        assert ex.pool is not None
        owner = self._owner(ex.pool)
        tls = self.svc.client_tls(ex.pool)
        name = (ex.pool.config.tls_server_name or backend.address) if tls is not None else None
        started = loop.time()
        try:
            async with asyncio.timeout(self.ctx.timeouts.connect or None):
                _, up = await loop.create_connection(
                    lambda: Upstream(backend, self.svc.idle, owner), backend.address, backend.port,
                    ssl=tls, server_hostname=name)
        except (OSError, TimeoutError) as err:  # ssl.SSLError (a failed verification) is an OSError
            ex.connecting = None
            shortage = local_exhaustion(err)
            if shortage is not None:
                self._short_of_resources(ex, backend, shortage)
                return
            reason = "connect timeout" if isinstance(err, TimeoutError) else (err.strerror or str(err))
            self._connect_failed(ex, backend, reason)
            return
        ex.connecting = None
        if self.closed or ex.finished:
            up.close()
            return
        ex.connect_time = loop.time() - started
        version = ex.pool.config.proxy_protocol
        if version != "none":
            encode = proxyproto.encode_v1 if version == "v1" else proxyproto.encode_v2
            up.transport.write(encode(self.client_addr, self.local_addr))
        self._attach(ex, up)

    def _short_of_resources(self, ex: Exchange, backend: Backend, reason: str) -> None:
        """Our own shortage (EMFILE...; issue 7 item 7, as in tcp.py): not the server's
        fault, so no health failure, no blacklist, no other server. Accepting pauses (GATE);
        the request is dispatched again shortly, until the connect timeout since its first
        attempt, then answered 503."""
        pool = ex.pool
        assert pool is not None
        pool.released(backend)
        ex.backend = None
        ex.attempts -= 1  # not a try of that server
        GATE.exhausted(reason, f"connecting to {backend.key} for service {self.ctx.name}")
        now = self.ctx.loop.time()
        if ex.first_attempt == 0.0:
            ex.first_attempt = now
        if self.closed or ex.finished:
            return
        limit = self.ctx.timeouts.connect
        if limit and now - ex.first_attempt + SHORTAGE_RETRY > limit:
            ex.termination = LIMIT
            self.local_response(ex, 503, [(b"Retry-After", b"%d" % self.opts.retry_after)])
            return
        ex.connecting = self.ctx.loop.call_later(SHORTAGE_RETRY, self._dispatch_again, ex)

    def _dispatch_again(self, ex: Exchange) -> None:
        ex.connecting = None
        if not self.closed and not ex.finished:
            self.dispatch(ex)

    def _connect_failed(self, ex: Exchange, backend: Backend, reason: str) -> None:
        pool = ex.pool
        assert pool is not None
        pool.released(backend)
        ex.backend = None
        pool.connect_failed(backend, self.ctx.loop.time())
        if self.ctx.health is not None:
            self.ctx.health.passive_failure(pool.name, backend, reason)
        throttle.log(log, logging.INFO, f"connect {self.ctx.name} {backend.key}",  # one per request in an outage
                     "service %s: connect to %s failed (%s) for %s", self.ctx.name, backend.key, reason, self.client_ip)
        if self.closed or ex.finished:
            return
        ex.tried.append(backend)  # nothing was sent: any request may go elsewhere
        # bounded work per request (issue 7 item 10): at most 1 + `retries` servers tried
        if pool.config.stubborn or ex.attempts > pool.config.retries:
            ex.termination = CONNECT_FAILED
            self.local_response(ex, 503, [(b"Retry-After", b"%d" % self.opts.retry_after)])
        else:
            self.dispatch(ex)

    def _attach(self, ex: Exchange, up: Upstream) -> None:
        ex.upstream = up
        up.exchange = ex
        up.got_bytes = False
        if not up.reused:
            up.transport.set_write_buffer_limits(WRITE_HIGH_WATER, WRITE_LOW_WATER)
        if self.write_paused:
            up.transport.pause_reading()
        pending = [ex.head_bytes, *ex.buffered] if ex.buffered else [ex.head_bytes]
        ex.buffered = None
        if self.corked:
            ex.up_out += pending
            self.up_dirty = ex
        else:
            up.transport.write(b"".join(pending))
        ex.t_sent = now = self.ctx.loop.time()
        self._arm_response(now)

    def _send_request_bytes(self, ex: Exchange, data: bytes) -> None:
        if ex.buffered is not None:
            ex.buffered.append(data)
        elif ex.upstream is not None and ex.upstream.transport is not None:
            if self.corked:
                ex.up_out.append(data)
                self.up_dirty = ex
            else:
                ex.upstream.transport.write(data)

    # -- a server failed before or during its response: retry, or answer ourselves ---------

    def server_failed(self, ex: Exchange, reason: str, status: int = 502) -> None:
        if ex.finished:
            return
        up = ex.upstream
        backend = ex.backend
        where = backend.key if backend else "?"
        throttle.log(log, logging.INFO, f"failed {self.ctx.name} {where}", "service %s: server %s failed: %s (for %s)",
                     self.ctx.name, where, reason, self.client_ip)
        ex.termination = TIMEOUT if status == 504 else SERVER_ABORT
        if ex.sent_head:
            self.abort(SERVER_ABORT)  # the client has part of a response: it must see a broken one
            return
        # Sent again, once, only when all three hold (issue 7 item 6): the method is
        # idempotent (RFC 9110 §9.2.2; RFC 9112 §9.3.1: never retry a non-idempotent request
        # automatically, even on a reused connection the server closed as we wrote), the body
        # can be replayed (bodies are streamed, not kept: only bodiless requests), and nothing
        # of the response has arrived.
        retry = (up is not None and not up.got_bytes and not ex.retried and not ex.has_body
                 and ex.method in IDEMPOTENT and status == 502
                 and ex.pool is not None and ex.attempts <= ex.pool.config.retries)
        if up is not None:
            up.abort()
            ex.upstream = None
        if retry and up is not None and backend is not None and ex.pool is not None:
            # After a fresh connection failed, another server is tried; after a reused one (the
            # server closed it as it was being reused), the same one may be chosen again.
            ex.retried = True
            ex.termination = ""
            ex.pool.released(backend)
            ex.backend = None
            ex.buffered = []
            ex.up_out.clear()
            if not up.reused:
                ex.tried.append(backend)
            self.dispatch(ex, fresh=True)
            return
        self.local_response(ex, status)

