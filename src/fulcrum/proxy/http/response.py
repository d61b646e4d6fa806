"""The answer on its way back to the client: the response head rewritten for the client
(Location/Content-Location back to the public origin, framing, Connection, Set-Cookie), the body
re-framed, tunnels after a 101, the answers the proxy gives itself (errors, rejections), and the
end of an exchange (the server connection kept or closed, the next pipelined request sent).

A mixin of `HttpConnection` (see connection.py for why a mixin).
"""

from __future__ import annotations

import logging

from fulcrum.logs import throttle
from fulcrum.observe import REJECTED, TIMEOUT, Observation
from fulcrum.proxy.http import headers as hdr
from fulcrum.proxy.http.codings import decoder_for
from fulcrum.proxy.http.codings import split as split_codings
from fulcrum.proxy.http.connection import ConnectionBase
from fulcrum.proxy.http.exchange import Exchange, RequestError
from fulcrum.proxy.http.record import observe, request_bytes_out
from fulcrum.proxy.http.responses import error_response

log = logging.getLogger("fulcrum.http")


class Responder(ConnectionBase):
    __slots__ = ()

    # -- response events (called by Upstream) -------------------------------------------

    def response_head(self, ex: Exchange, status: int, reason: bytes, headers: hdr.Headers) -> None:
        ex.resp_status = status
        if ex.out_mark < 0:
            ex.out_mark = self.bytes_out
        if status == 101 and ex.upgrade:
            self._start_tunnel(ex, status, reason, headers)
            return
        svc = self.svc
        rewrite = svc.server_origins(ex.backend) if self.opts.rewrite_location and ex.backend else None
        public = svc.public_origins.get(ex.host) if rewrite is not None else None
        if rewrite is not None and public is None:
            public = svc.public_origin(ex.host)
        lines, framed_by_length, codings = hdr.response_fields(headers, rewrite, public)  # pieces
        if 100 <= status < 200:
            if ex.version == b"1.1" and status != 101:  # interim answers only to 1.1 (RFC 9110 §15.2)
                self._to_client(b"HTTP/1.1 %d %s\r\n%s\r\n" % (status, reason, b"".join(lines)))
            return
        ex.sent_head = True
        svc.count_response(status)
        if ex.set_cookie is not None:
            lines.append(b"Set-Cookie: " + ex.set_cookie + b"\r\n")
        no_body = ex.method == b"HEAD" or status in (204, 304)
        # RFC 9112 §6.3: chunked as the final coding frames the body; any other coding list
        # means the body ends with the connection. Codings before chunked stay (§6.1).
        kept: list[bytes] = []
        chunked = False
        if codings is not None:
            kept, chunked = split_codings(codings)
        ex.resp_framed = chunked or (framed_by_length and codings is None)
        if no_body:
            ex.resp_mode = "none"
        elif framed_by_length and codings is None:
            ex.resp_mode = "length"
        elif ex.version == b"1.1":
            ex.resp_mode = "chunk"
            lines.append(b"Transfer-Encoding: " + b", ".join([*kept, b"chunked"]) + b"\r\n")
        else:
            ex.resp_mode = "raw"  # HTTP/1.0 client: the end of the body is the end of the connection
            ex.keep_alive = False
            if kept:  # it cannot be sent transfer codings (RFC 9112 §6.1): they are undone here
                ex.decoder = decoder_for(kept)
                if ex.decoder is None:  # nothing was written yet: a 502 can still be sent
                    ex.sent_head = False
                    self.server_failed(ex, "transfer coding an HTTP/1.0 client cannot take")
                    return
        if self.stopping and self.queue[-1] is ex:
            ex.keep_alive = False  # the node is stopping and no later request has begun
        if not ex.keep_alive:
            lines.append(b"Connection: close\r\n")
        elif ex.version == b"1.0":
            lines.append(b"Connection: keep-alive\r\n")
        self._to_client(b"HTTP/%s %d %s\r\n%s\r\n" % (ex.version, status, reason, b"".join(lines)))
        if ex.method == b"HEAD":
            # httptools cannot be told the request was HEAD, so it would wait for a body:
            # the response ends here and this server connection is not reused.
            self.response_complete(ex, reusable=False)

    def response_body(self, ex: Exchange, body: bytes) -> None:
        if ex.finished:
            return
        if ex.resp_mode == "chunk":
            self._to_client(b"%x\r\n%s\r\n" % (len(body), body))
        elif ex.resp_mode != "none":
            if ex.decoder is not None:
                try:
                    body = ex.decoder.feed(body)
                except ValueError as err:
                    self.server_failed(ex, str(err))
                    return
            self._to_client(body)

    def response_complete(self, ex: Exchange, reusable: bool = True) -> None:
        if ex.finished or not ex.sent_head or self.tunnel is not None:
            return  # an interim (1xx) response ended, or a 101 made this a tunnel
        if ex.resp_mode == "chunk":
            self._to_client(b"0\r\n\r\n")
        elif ex.decoder is not None:
            try:
                self._to_client(ex.decoder.flush())
            except ValueError as err:
                self.server_failed(ex, str(err))
                return
        up = ex.upstream
        keep = (reusable and up is not None and ex.request_done and up.parser.should_keep_alive()
                and not ex.upgrade)
        self._finish(ex, keep_upstream=keep)

    def server_eof(self, ex: Exchange, lost: bool = False) -> None:
        """The server closed: the end of a read-until-close body, or a failure."""
        if ex.finished:
            return
        if ex.sent_head and not ex.resp_framed:
            self.response_complete(ex, reusable=False)  # RFC 9112 §6.3 rule 8: read until close
            return
        self.server_failed(ex, "connection closed by server")

    # -- tunnels (Upgrade, after the server's 101) ----------------------------------------

    def _start_tunnel(self, ex: Exchange, status: int, reason: bytes, headers: hdr.Headers) -> None:
        up = ex.upstream
        assert up is not None
        ex.sent_head = True
        self.svc.count_response(status)
        self._to_client(hdr.response_head(status, reason, headers, ex.version))
        up.tunnel = True
        self.tunnel = up
        ex.resp_status = status
        if ex.out_mark < 0:
            ex.out_mark = self.bytes_out
        held, self.held = self.held, None
        if held:  # sent only now: the server has agreed to the new protocol
            up.transport.write(held)
        self.resp_deadline = 0.0
        self._arm("none", 0)
        self.blockers.clear()
        self.transport.resume_reading()

    def tunnel_from_server(self, data: bytes) -> None:
        self.touched = True
        self._to_client(data)

    def tunnel_eof(self) -> None:
        if self.transport is not None and self.transport.can_write_eof():
            self.transport.write_eof()

    # -- answers of our own ----------------------------------------------------------------

    def local_response(self, ex: Exchange, status: int, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        """Answer `ex` (the head of the queue) ourselves, then close the connection."""
        self.svc.count_response(status)
        ex.resp_status = status
        if ex.out_mark < 0:
            ex.out_mark = self.bytes_out
        ex.sent_head = True
        ex.keep_alive = False
        self._to_client(error_response(status, extra=extra, head_only=ex.method == b"HEAD"))
        self._finish(ex, keep_upstream=False)

    def reject(self, err: RequestError) -> None:
        """Bad input: answered once every earlier response is out, then the connection closes."""
        if self.error is not None or self.closed:
            return
        err.__traceback__ = None  # its frames hold this connection: no cycle through them
        self.error = err
        self.block_reading("rejected")
        throttle.log(log, logging.INFO, f"rejected {self.ctx.name}", "service %s: rejected request from %s: %d %s",
                     self.ctx.name, self.client_ip, err.status, err)  # a client can send these by the thousand
        ex = self.receiving
        self.receiving = None
        if ex is not None and ex in self.queue:
            ex.resp_status = err.status  # its record says how it was refused
            ex.termination = TIMEOUT if err.status == 408 else REJECTED
            self._drop(ex)
        elif ex is None:  # refused before a request began (a PROXY header, a stalled first byte)
            self.ctx.observer.record(Observation(
                kind="http", service=self.ctx.name, client=self.client_addr[0],
                client_port=self.client_addr[1], status=err.status,
                termination=TIMEOUT if err.status == 408 else REJECTED))  # the server got part of this request: it is out of step now
        if not self.queue:
            self._write_rejection()

    def _write_rejection(self) -> None:
        err = self.error
        assert err is not None
        self.svc.count_response(err.status)
        if self.transport is not None and not self.closed:
            self._to_client(error_response(err.status))
        self.close()

    # -- the end of an exchange ------------------------------------------------------------

    def _release(self, ex: Exchange, keep_upstream: bool = False) -> None:
        """The exchange is over (answered, refused or cut): free its server side and record
        it, exactly once."""
        if ex.finished:
            return
        ex.finished = True
        if self.queue and self.queue[0] is ex:
            self.resp_deadline = 0.0
        if ex.connecting is not None:
            ex.connecting.cancel()
            ex.connecting = None
        if ex.backend is not None and ex.pool is not None:
            # bytes each way, for bytraffic (mod_lbmethod_bytraffic counts per request)
            ex.pool.released(ex.backend, ex.head_in + ex.body_in + request_bytes_out(self, ex))
            ex.backend = None
        up = ex.upstream
        ex.upstream = None
        if up is not None:
            if keep_upstream:
                if self.write_paused:
                    up.transport.resume_reading()  # it was paused for this slow client
                self.svc.idle.put(up, self.ctx.loop.time())
            else:
                up.close()
        now = self.ctx.loop.time()
        self.t_ready = now
        observe(self, ex, now)

    def _finish(self, ex: Exchange, keep_upstream: bool) -> None:
        self._release(ex, keep_upstream)
        if ex in self.queue:
            self.queue.remove(ex)
        if not ex.keep_alive:
            self.close()  # RFC 9112 §9.6: the last response on this connection
            return
        if ex.upgrade and self.held is not None:
            # a declined upgrade (issue 7 item 1): the held bytes are read as HTTP, after this
            # callback returns, so they are parsed outside the server's parser callback
            self.ctx.loop.call_soon(self.replay_after_declined_upgrade)
        if len(self.queue) <= 1:
            self.unblock_reading("pipelined")
        if self.queue:
            nxt = self.queue[0]
            if nxt.method and nxt.backend is None and nxt.connecting is None:
                self.dispatch(nxt)  # its head is complete: it was waiting for its turn
        elif self.error is not None:
            self._write_rejection()
        elif self.client_eof or self.stopping:
            self.close()
        elif self.receiving is None:
            self._arm("keepalive", self.opts.keepalive_timeout)
