"""TLS on an accepted client connection, over memory BIOs (ssl.SSLObject), in front of the
HTTP protocol. An edge module.

The event loops' TLS transports (asyncio's and uvloop's sslproto) do not do two things this
proxy promises (issue 7 item 14):
- a client's close_notify closes only its sending side (RFC 8446 §6.1: the other side may
  go on writing), so pipelined requests sent before it are still answered, as over plain TCP;
  the loops close the connection on it.
- a refused handshake sends its alert before the connection closes (TLS 1.1 gets a
  `protocol_version` alert the client can report); the loops drop the connection with it
  unsent.
So the listener accepts plain TCP and this protocol does the TLS, presenting the HTTP
protocol with a transport that looks like any other."""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

log = logging.getLogger("fulcrum.http")

READ_SIZE = 256 * 1024


class TlsServerSide(asyncio.Protocol):
    """The raw connection's protocol: decrypts into `app`, encrypts what `app` writes."""

    __slots__ = ("app", "context", "handshake_timeout", "raw", "incoming", "outgoing", "tls", "ready",
                 "timer", "read_paused", "peer_closed", "app_transport", "closing", "reading_soon")

    def __init__(self, app: asyncio.Protocol, context: ssl.SSLContext, handshake_timeout: float):
        self.app = app
        self.context = context
        self.handshake_timeout = handshake_timeout
        self.raw: Any = None
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls: ssl.SSLObject | None = None
        self.ready = False
        self.timer: asyncio.TimerHandle | None = None
        self.read_paused = False
        self.peer_closed = False  # the client's close_notify (or FIN) arrived
        self.app_transport: TlsTransport | None = None
        self.closing = False
        self.reading_soon = False

    # -- the raw connection ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.raw = transport
        self.tls = self.context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        if self.handshake_timeout:
            self.timer = asyncio.get_running_loop().call_later(self.handshake_timeout, self._too_slow)

    def data_received(self, data: bytes) -> None:
        self.incoming.write(data)
        if not self.ready:
            self._handshake()
        if self.ready:
            self._read()

    def eof_received(self) -> bool:
        if not self.ready:
            return False  # no handshake, nothing to answer
        self._read()
        self._peer_done()
        return True  # keep our sending side: the answers may still go out

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.ready:
            self.app.connection_lost(exc)
        self.app = None  # type: ignore[assignment]  # no cycle left behind
        self.app_transport = None

    def pause_writing(self) -> None:
        if self.ready:
            self.app.pause_writing()

    def resume_writing(self) -> None:
        if self.ready:
            self.app.resume_writing()

    # -- TLS -------------------------------------------------------------------------------

    def _too_slow(self) -> None:
        self.timer = None
        if not self.ready:
            self.raw.abort()

    def _handshake(self) -> None:
        assert self.tls is not None
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return
        except (ssl.SSLError, OSError) as err:
            # The alert OpenSSL wrote (protocol_version, handshake_failure...) goes out first.
            log.debug("TLS handshake refused: %s", err)
            self._flush()
            self.closing = True
            self.raw.close()
            return
        self.ready = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self._flush()
        self.app_transport = TlsTransport(self)
        self.app.connection_made(self.app_transport)

    def _read(self) -> None:
        """Hand decrypted data to the app while it reads."""
        tls = self.tls
        assert tls is not None
        while not self.read_paused and not self.closing and not self.peer_closed:
            try:
                chunk = tls.read(READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                chunk = b""
            except ssl.SSLError as err:  # a bad record: the stream cannot be trusted further
                log.debug("TLS error: %s", err)
                self._flush()
                self.closing = True
                self.raw.abort()
                return
            if not chunk:  # close_notify (read() says so with b""): the client sends no more
                self._peer_done()
                break
            self.app.data_received(chunk)
        self._flush()

    def _peer_done(self) -> None:
        if not self.peer_closed and not self.closing:
            self.peer_closed = True
            self.app.eof_received()

    def _flush(self) -> None:
        if self.outgoing.pending and self.raw is not None and not self.raw.is_closing():
            self.raw.write(self.outgoing.read())

    def _read_soon(self) -> None:
        self.reading_soon = False
        if self.ready and not self.closing:
            self._read()

    # -- called by TlsTransport ---------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.closing or self.tls is None:
            return
        view = memoryview(data)
        while view:
            written = self.tls.write(view)
            view = view[written:]
        self._flush()

    def close(self) -> None:
        if self.closing:
            return
        self.closing = True
        if self.tls is not None:
            try:
                self.tls.unwrap()  # our close_notify
            except (ssl.SSLError, OSError):
                pass  # SSLWantReadError: it is sent; we do not wait for the client's
        self._flush()
        self.raw.close()

    def pause_reading(self) -> None:
        self.read_paused = True
        self.raw.pause_reading()

    def resume_reading(self) -> None:
        self.read_paused = False
        self.raw.resume_reading()
        if not self.reading_soon:  # data already decrypted or buffered is delivered now
            self.reading_soon = True
            asyncio.get_running_loop().call_soon(self._read_soon)


class TlsTransport(asyncio.Transport):
    """What the HTTP protocol sees: a transport carrying plaintext."""

    def __init__(self, side: TlsServerSide):
        super().__init__()
        self.side = side

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.side.write(bytes(data))

    def writelines(self, lines: Any) -> None:
        self.side.write(b"".join(lines))

    def close(self) -> None:
        self.side.close()

    def abort(self) -> None:
        self.side.closing = True
        self.side.raw.abort()

    def is_closing(self) -> bool:
        return bool(self.side.closing or self.side.raw.is_closing())

    def can_write_eof(self) -> bool:
        return False  # TLS 1.2 has no half-close of our side: close() sends close_notify

    def pause_reading(self) -> None:
        self.side.pause_reading()

    def resume_reading(self) -> None:
        self.side.resume_reading()

    def is_reading(self) -> bool:
        return not self.side.read_paused

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.side.raw.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return int(self.side.raw.get_write_buffer_size())

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        tls = self.side.tls
        if name == "ssl_object":
            return tls
        if name == "sslcontext":
            return self.side.context
        if name == "peercert":
            return tls.getpeercert() if tls is not None else default
        if name == "cipher":
            return tls.cipher() if tls is not None else default
        return self.side.raw.get_extra_info(name, default)
