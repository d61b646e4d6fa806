"""Health probes against real loopback servers: tcp, http(s), tls and scripts."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from fulcrum.config.model import HealthCheck
from fulcrum.health.probes import run_probe
from tests.support import free_port, wait_for

LOOPBACK = "127.0.0.1"


LOOPS = {"asyncio": asyncio.new_event_loop}
try:
    import uvloop
except ImportError:  # uvloop is the fast path, not a requirement
    pass
else:
    LOOPS["uvloop"] = uvloop.new_event_loop
_loop_factory = asyncio.new_event_loop


@pytest.fixture(autouse=True, params=sorted(LOOPS))
def event_loop_kind(request: pytest.FixtureRequest) -> str:
    """Every test here runs on both event loops (subprocesses, TLS and timeouts differ)."""
    global _loop_factory
    _loop_factory = LOOPS[request.param]
    return str(request.param)


def run(coro: Awaitable[Any]) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, 10)
    with asyncio.Runner(loop_factory=_loop_factory) as runner:
        return runner.run(bounded())


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serve(handler: Handler, context: ssl.SSLContext | None = None) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, LOOPBACK, 0, ssl=context)
    return server, server.sockets[0].getsockname()[1]


def http_backend(response: bytes, seen: list[bytes] | None = None, linger: bool = False) -> Handler:
    """A one-shot HTTP server: read the request head, answer `response`, close
    (or, with `linger`, keep the connection open until the client closes it)."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            if seen is not None:
                seen.append(head)
            writer.write(response)
            await writer.drain()
            if linger:
                await reader.read()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()
    return handle


def reply(status: str, body: bytes = b"", extra: str = "") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}\r\n").encode() + body


async def probe_server(check: HealthCheck, handler: Handler,
                       context: ssl.SSLContext | None = None) -> tuple[bool, str]:
    server, port = await serve(handler, context)
    async with server:
        return await run_probe(check, LOOPBACK, port)


def http_check(**settings: Any) -> HealthCheck:
    return HealthCheck(kind=settings.pop("kind", "http"), interval=2, timeout=1, **settings)


# -- tcp ---------------------------------------------------------------------------


def test_tcp_probe_succeeds_on_a_listening_port():
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()
    assert run(probe_server(HealthCheck(kind="tcp"), silent)) == (True, "connect ok")


def test_tcp_probe_reports_a_refused_connect():
    assert run(run_probe(HealthCheck(kind="tcp"), LOOPBACK, free_port())) == (False, "connect refused")


def test_probe_port_overrides_the_server_port():
    async def scenario() -> tuple[bool, str]:
        server, port = await serve(http_backend(b""))
        async with server:
            return await run_probe(HealthCheck(kind="tcp", port=port), LOOPBACK, free_port())
    assert run(scenario()) == (True, "connect ok")


# -- http --------------------------------------------------------------------------


@pytest.mark.parametrize("status,settings,expected", [
    ("200 OK", {}, (True, "HTTP 200")),
    ("302 Found", {}, (True, "HTTP 302")),
    ("500 Internal Server Error", {}, (False, "HTTP 500")),
    ("404 Not Found", {}, (False, "HTTP 404")),
    ("503 Service Unavailable", {"expect_status": [503]}, (True, "HTTP 503")),
    ("200 OK", {"expect_status": [204]}, (False, "HTTP 200")),
])
def test_http_probe_judges_the_status(status, settings, expected):
    assert run(probe_server(http_check(**settings), http_backend(reply(status, b"hello")))) == expected


def test_http_probe_matches_the_body():
    backend = http_backend(reply("200 OK", b"status: all good\n"))
    assert run(probe_server(http_check(expect_body=r"all\s+good"), backend)) == (True, "HTTP 200")
    ok, reason = run(probe_server(http_check(expect_body="^ready$"), backend))
    assert not ok
    assert reason == "HTTP 200, body does not match '^ready$'"


def test_http_probe_reads_a_chunked_body():
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"6\r\nstatus\r\n4\r\n: up\r\n0\r\n\r\n")
    assert run(probe_server(http_check(expect_body="status: up"), http_backend(chunked))) == (True, "HTTP 200")


def test_http_probe_reads_a_body_delimited_by_close():
    until_close = b"HTTP/1.0 200 OK\r\n\r\nalive"
    assert run(probe_server(http_check(expect_body="alive"), http_backend(until_close))) == (True, "HTTP 200")


def test_http_probe_sends_method_path_and_host():
    seen: list[bytes] = []
    check = http_check(method="HEAD", path="/health?full=1", host="app.example", expect_body="^$")
    # A HEAD answer announces a length but has no body: the probe must not wait for it.
    head_reply = b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"
    result = run(probe_server(check, http_backend(head_reply, seen, linger=True)))
    assert result == (True, "HTTP 200")
    lines = seen[0].decode().split("\r\n")
    assert lines[0] == "HEAD /health?full=1 HTTP/1.1"
    assert "Host: app.example" in lines


def test_http_probe_host_defaults_to_the_server_address_and_port():
    seen: list[bytes] = []

    async def scenario() -> tuple[bool, str]:
        server, port = await serve(http_backend(reply("200 OK"), seen))
        async with server:
            result = await run_probe(http_check(), LOOPBACK, port)
        assert f"Host: {LOOPBACK}:{port}" in seen[0].decode().split("\r\n")
        return result
    assert run(scenario()) == (True, "HTTP 200")


def test_http_probe_reports_garbage_and_silence():
    assert run(probe_server(http_check(), http_backend(b"SSH-2.0-OpenSSH\r\n\r\n"))) == (
        False, "invalid HTTP response")
    assert run(probe_server(http_check(), http_backend(b""))) == (
        False, "connection closed before a response")


def test_http_probe_times_out_on_a_server_that_never_answers():
    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the probe gives up and closes
        writer.close()
    check = HealthCheck(kind="http", interval=1, timeout="200ms")
    assert run(probe_server(check, mute)) == (False, "timeout after 200ms")


# -- tls and https -----------------------------------------------------------------


@pytest.fixture(scope="module")
def server_tls(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A self-signed certificate for 127.0.0.1, made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=fulcrum-test", "-addext",
         "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def test_tls_probe_completes_a_handshake(server_tls):
    ok, reason = run(probe_server(HealthCheck(kind="tls"), http_backend(b""), server_tls))
    assert ok
    assert reason.startswith("TLS handshake ok (TLSv1.")


def test_tls_probe_fails_against_a_plain_tcp_server():
    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()
    ok, reason = run(probe_server(HealthCheck(kind="tls"), plain))
    assert not ok
    assert reason.startswith("TLS error")


def test_https_probe_checks_status_and_body(server_tls):
    backend = http_backend(reply("200 OK", b"pong"))
    assert run(probe_server(http_check(kind="https", expect_body="pong"), backend, server_tls)) == (
        True, "HTTP 200")
    assert run(probe_server(http_check(kind="https"), http_backend(reply("502 Bad Gateway")),
                            server_tls)) == (False, "HTTP 502")


def test_https_probe_with_verification_rejects_a_self_signed_certificate(server_tls):
    ok, reason = run(probe_server(http_check(kind="https", verify_tls=True),
                                  http_backend(reply("200 OK")), server_tls))
    assert not ok
    assert reason.startswith("certificate verify failed")


# -- script ------------------------------------------------------------------------


def script_check(command: str, timeout: str = "1s") -> HealthCheck:
    return HealthCheck(kind="script", command=command, interval=2, timeout=timeout)


def test_script_exit_status_decides():
    assert run(run_probe(script_check("exit 0"), LOOPBACK, 80)) == (True, "exit status 0")
    assert run(run_probe(script_check("exit 1"), LOOPBACK, 80)) == (False, "exit status 1")


def test_script_failure_reason_carries_the_first_line_of_stderr():
    result = run(run_probe(script_check("echo 'disk full' >&2; echo more >&2; exit 2"), LOOPBACK, 80))
    assert result == (False, "exit status 2: disk full")


def test_script_sees_the_server_address_in_env_and_as_nanny_token():
    command = ('test "$FULCRUM_SERVER_ADDRESS" = 127.0.0.1 && test "$FULCRUM_SERVER_PORT" = 8080'
               ' && test "$HAPROXY_SERVER_ADDR:$HAPROXY_SERVER_PORT" = 127.0.0.1:8080'
               ' && test "%h" = 127.0.0.1')
    assert run(run_probe(script_check(command), LOOPBACK, 8080)) == (True, "exit status 0")
    assert run(run_probe(script_check(command), LOOPBACK, 8081))[0] is False


def process_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")  # a zombie has been killed; init reaps it when it can


def test_script_is_killed_with_its_children_at_the_timeout(tmp_path):
    pidfile = tmp_path / "child.pid"
    command = f"sleep 30 & echo $! > {pidfile}; wait"
    assert run(run_probe(script_check(command, timeout="300ms"), LOOPBACK, 80)) == (
        False, "timeout after 300ms")
    # SIGKILL went to the whole group; the kernel finishes the child off asynchronously,
    # so wait for that (bounded) rather than look at one instant.
    child = int(pidfile.read_text())
    wait_for(lambda: process_gone(child), what=f"the probe's child {child} gone")
