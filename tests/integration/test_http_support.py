"""Support for the HTTP integration tests (no tests here): a small HTTP/1.1 backend run as a
separate process (`python test_http_support.py NAME PORT [ROUTE]`), and a raw-socket client.

The backend's behaviour is chosen by path, so one process serves every scenario:
  /name            its name (also in X-Backend)        /echo        the request body back
  /headers         the request head it received         /chunked?n=  n chunks of its name
  /big?n=          n bytes                              /close       body ended by closing
  /slow?s=         answers after s seconds              /redirect    Location at itself
  /status/N        status N                             /garbage     not HTTP at all
  /reset           drops the connection                 /ws          101, then echoes raw bytes
  /hugehead        a response head that never ends      /sink        reads the body 1.5 s late, answers its size
  /session         sets JSESSIONID=<id>.<route>     /log         every request line seen so far
  /extra?n=         "ok", then n bytes of an unasked-for response in the same write
  /coded?te=       gzip'd body with `Transfer-Encoding: te` (chunked last, or close-delimited)
  /truncated?n=    Content-Length n, n/2 bytes, then the connection closed
  /noupgrade       an Upgrade request answered 200 (declined), later bytes read as HTTP
Expect: 100-continue is answered with 100 before the body is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httptools

HERE = Path(__file__).resolve()


SEEN: list[bytes] = []  # request lines this process received, for /log
BLOCK = b"x" * 65536  # /big's body is sent from this, as fast as the reader takes it


class BackendProtocol(asyncio.Protocol):
    def __init__(self, name: str, port: int, route: str):
        self.name, self.port, self.route = name, port, route
        self.parser = httptools.HttpRequestParser(self)
        self.transport: Any = None
        self.tunnel = False
        self.proxy_line: bytes | None = None
        self.streaming = 0  # /big's body bytes still to send
        self.paused = False
        self.deferred: list[tuple[bytes, str, dict[str, str]]] = []  # pipelined behind /big

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.pump()

    def pump(self) -> None:
        """/big's body, written as the reader takes it: the head goes out at once, whatever
        the size (no 64 MB built before the first byte), and memory stays flat."""
        t = self.transport
        while self.streaming and not self.paused and not t.is_closing():
            chunk = BLOCK if self.streaming >= len(BLOCK) else BLOCK[:self.streaming]
            self.streaming -= len(chunk)
            t.write(chunk)
        if self.streaming or t.is_closing():
            return
        if not self.parser.should_keep_alive():
            t.close()
            return
        while self.deferred and not self.streaming:
            self.answer(*self.deferred.pop(0))

    def data_received(self, data: bytes) -> None:
        if self.tunnel:
            self.transport.write(data)
            return
        if self.proxy_line is None:  # a PROXY header may open the connection: kept for /headers
            if data.startswith(b"PROXY "):
                line, _, data = data.partition(b"\r\n")
                self.proxy_line = line
            elif data.startswith(b"\r\n\r\n\x00\r\nQUIT\n"):
                size = 16 + int.from_bytes(data[14:16], "big")
                self.proxy_line, data = b"v2:" + data[:size].hex().encode(), data[size:]
            else:
                self.proxy_line = b""
            if not data:
                return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as up:
            if self.url.startswith(b"/noupgrade"):  # declines the upgrade: a plain answer, then
                self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\ndeclined")
                self.parser = httptools.HttpRequestParser(self)  # what follows is HTTP again
                self.data_received(data[up.args[0]:])
                return
            self.tunnel = True
            self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                 b"Connection: Upgrade\r\n\r\n" + data[up.args[0]:])
        except httptools.HttpParserError:
            self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            self.transport.close()

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if any(n.lower() == b"expect" and v.lower() == b"100-continue" for n, v in self.headers):
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if self.url.startswith(b"/sink"):  # a server slow to read the body: stop reading a while
            self.transport.pause_reading()
            asyncio.get_running_loop().call_later(1.5, self.transport.resume_reading)

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        if self.parser.should_upgrade():
            return
        method = self.parser.get_method()
        SEEN.append(method + b" " + self.url)
        url = urlsplit(self.url.decode())
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        path = url.path.split(";")[0]
        if path == "/slow":
            asyncio.get_running_loop().call_later(float(query.get("s", "1")), self.answer, method, path, query)
        else:
            self.answer(method, path, query)

    def answer(self, method: bytes, path: str, query: dict[str, str]) -> None:
        t = self.transport
        if t.is_closing():
            return
        if self.streaming:
            self.deferred.append((method, path, query))
            return
        name = self.name.encode()
        extra: list[tuple[bytes, bytes]] = [(b"X-Backend", name)]
        status, body = 200, name
        if path == "/echo":
            body = self.body
        elif path == "/headers":
            body = b"".join(n + b": " + v + b"\r\n" for n, v in self.headers)
            if self.proxy_line:
                body += b"(proxy) " + self.proxy_line + b"\r\n"
        elif path == "/sink":
            body = b"%d" % len(self.body)
        elif path == "/log":
            body = b"\n".join(SEEN)
        elif path == "/big" and method != b"HEAD":
            self.streaming = int(query.get("n", "1000000"))
            t.write(b"HTTP/1.1 200 OK\r\nX-Backend: %s\r\nContent-Length: %d\r\n\r\n" % (name, self.streaming))
            self.pump()
            return
        elif path == "/big":
            body = b"x" * int(query.get("n", "1000000"))
        elif path == "/redirect":
            status, body = 302, b""
            extra.append((b"Location", b"http://127.0.0.1:%d/next?from=%s" % (self.port, name)))
        elif path.startswith("/status/"):
            status, body = int(path.rsplit("/", 1)[1]), b""
        elif path == "/session":
            extra.append((b"Set-Cookie", b"JSESSIONID=s%d.%s; Path=/" % (self.port, self.route.encode())))
        elif path == "/hugehead":  # a response head that never ends
            t.write(b"HTTP/1.1 200 OK\r\nX-Huge: " + b"h" * 3_000_000)
            return
        elif path == "/coded":  # a body with transfer codings (gzip before chunked, or close-delimited)
            import gzip

            codings = query.get("te", "gzip, chunked")
            data = gzip.compress(b"hello " * 1000)
            if codings.endswith("chunked"):
                data = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (data[:100], data[100:])) + b"0\r\n\r\n"
            t.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + codings.encode() + b"\r\n\r\n" + data)
            if not codings.endswith("chunked"):
                t.close()
            return
        elif path == "/truncated":  # dies mid-body: promises n bytes, sends half, closes
            n = int(query.get("n", "1000000"))
            t.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n + b"t" * (n // 2))
            t.close()
            return
        elif path == "/extra":  # a broken server: more bytes after a complete response
            sneaky = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsneaky"
            t.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + sneaky[:int(query.get("n", "99"))])
            return
        elif path == "/garbage":
            t.write(b"this is not http\r\n\r\n")
            t.close()
            return
        elif path == "/reset":
            t.abort()
            return
        elif path == "/chunked":
            head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Backend: " + name + b"\r\n\r\n"
            n = int(query.get("n", "3"))
            t.write(head + b"".join(b"%x\r\n%s\r\n" % (len(name), name) for _ in range(n)) + b"0\r\n\r\n")
            return
        elif path == "/close":
            t.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nX-Backend: " + name + b"\r\n\r\n" + b"until-close:" + name)
            t.close()
            return
        reason = b"OK" if status == 200 else b"Status"
        lines = [b"HTTP/1.1 %d %s" % (status, reason)] + [n + b": " + v for n, v in extra]
        no_body = status in (204, 304) or 100 <= status < 200
        if not no_body:
            lines.append(b"Content-Length: %d" % len(body))
        t.write(b"\r\n".join(lines) + b"\r\n\r\n" + (b"" if method == b"HEAD" or no_body else body))
        if not self.parser.should_keep_alive():
            t.close()


async def serve(name: str, port: int, route: str, cert: str | None = None, key: str | None = None) -> None:
    loop = asyncio.get_running_loop()
    tls = None
    if cert:
        import ssl

        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(cert, key)
    server = await loop.create_server(lambda: BackendProtocol(name, port, route), "127.0.0.1", port,
                                      reuse_address=True, ssl=tls)
    async with server:
        await server.serve_forever()


# -- used by the tests ---------------------------------------------------------------------


class BackendProcess:
    def __init__(self, name: str, route: str | None = None, tls: tuple[str, str] | None = None):
        # here, not at the top: this file also runs as the backend script, without tests/ importable
        from tests.support import free_port, wait_connectable

        self.name = name
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, str(HERE), name, str(self.port), route or name, *(tls or ())])
        try:
            wait_connectable(self.port, alive=self._alive)
        except AssertionError as err:
            self.stop()
            raise AssertionError(f"backend {name} did not start: {err}") from None

    def _alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"exited {self.proc.returncode}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@contextlib.contextmanager
def running(names: str, routes: dict[str, str] | None = None) -> Iterator[dict[str, BackendProcess]]:
    """Backend processes named by the letters of `names`, stopped on leaving."""
    procs: dict[str, BackendProcess] = {}
    try:
        for name in names:
            procs[name] = BackendProcess(name, route=(routes or {}).get(name))
        yield procs
    finally:
        for proc in procs.values():
            proc.stop()


class Response:
    def __init__(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""
        self.done = False

    def header(self, name: bytes) -> bytes | None:
        for n, v in self.headers:
            if n.lower() == name:
                return v
        return None


class _Collect:
    def __init__(self) -> None:
        self.responses: list[Response] = []
        self.parser: Any = None

    def on_headers_complete(self) -> None:
        self.responses[-1].status = self.parser.get_status_code()

    def on_message_begin(self) -> None:
        self.responses.append(Response())

    def on_header(self, name: bytes, value: bytes) -> None:
        self.responses[-1].headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.responses[-1].body += body

    def on_message_complete(self) -> None:
        self.responses[-1].done = True


class Client:
    """A raw HTTP/1.1 client: send any bytes, read responses (parsed strictly), see closes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.collect = _Collect()
        self.parser = httptools.HttpResponseParser(self.collect)
        self.collect.parser = self.parser
        self.eof = False
        self.raw = b""
        self.head_requests = 0

    @classmethod
    async def connect(cls, port: int, host: str = "127.0.0.1", ssl: Any = None,
                      server_hostname: str | None = None) -> Client:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=ssl, server_hostname=server_hostname), 5)
        return cls(reader, writer)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def responses(self, count: int, timeout: float = 10.0) -> list[Response]:
        """Wait for `count` complete responses (or EOF); returns those complete."""
        async with asyncio.timeout(timeout):
            while sum(r.done for r in self.collect.responses) < count and not self.eof:
                data = await self.reader.read(65536)
                if not data:
                    self.eof = True
                    with contextlib.suppress(httptools.HttpParserError):
                        self.parser.feed_data(b"")
                    break
                self.raw += data
                self.parser.feed_data(data)
        return [r for r in self.collect.responses if r.done]

    async def get(self, path: str, headers: str = "", host: str = "test") -> Response:
        before = sum(r.done for r in self.collect.responses)
        self.send(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{headers}\r\n".encode())
        got = await self.responses(before + 1)
        assert len(got) > before, f"no response to GET {path}"
        return got[before]

    async def closed(self, timeout: float = 10.0) -> bool:
        """True once the server has closed the connection (EOF or reset)."""
        try:
            async with asyncio.timeout(timeout):
                while not self.eof:
                    data = await self.reader.read(65536)
                    if not data:
                        self.eof = True
                    self.raw += data
        except (ConnectionResetError, BrokenPipeError):
            self.eof = True
        return self.eof

    def close(self) -> None:
        self.writer.close()


if __name__ == "__main__":
    name, port, route, *tls = sys.argv[1:] + [sys.argv[1]] * (4 - len(sys.argv))
    asyncio.run(serve(name, int(port), route, *tls))
