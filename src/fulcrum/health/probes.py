"""Active health probes: the I/O edge that feeds the pure counter.

Each probe is `async (check, address, port) -> (ok, reason)`, where `reason` is
short and human ("connect refused", "HTTP 500", "exit status 1"). `run_probe`
picks the probe by `HealthCheck.kind`, applies `HealthCheck.timeout` to the
whole probe (connect, TLS handshake, request and response, or the script's run
time) and turns exceptions into reasons, so a probe never raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import signal
import ssl
from collections.abc import Awaitable, Callable

import httptools

from fulcrum.config.model import HealthCheck
from fulcrum.config.types import bracket_host, format_duration, join_host_port
from fulcrum.failures import describe_error

Result = tuple[bool, str]
Probe = Callable[[HealthCheck, str, int], Awaitable[Result]]

BODY_LIMIT = 64 * 1024  # expect_body is matched against at most this much of the body
USER_AGENT = "fulcrum-health"


async def run_probe(check: HealthCheck, address: str, port: int) -> Result:
    """Probe `address` (the probe port is `check.port`, else `port`) once."""
    probe = PROBES[check.kind]
    try:
        async with asyncio.timeout(check.timeout):
            return await probe(check, address, check.port or port)
    except TimeoutError:
        return False, f"timeout after {format_duration(check.timeout)}"
    except (OSError, httptools.HttpParserError, UnicodeError) as exc:
        return False, describe_error(exc, address)


# -- tcp and tls -------------------------------------------------------------------


async def probe_tcp(check: HealthCheck, address: str, port: int) -> Result:
    _, writer = await asyncio.open_connection(address, port)
    writer.close()
    return True, "connect ok"


async def probe_tls(check: HealthCheck, address: str, port: int) -> Result:
    _, writer = await asyncio.open_connection(
        address, port, ssl=client_context(check.verify_tls), server_hostname=check.host or address)
    tls = writer.get_extra_info("ssl_object")
    # No wait for the peer's close_notify: the handshake is what we came for.
    writer.close()
    return True, f"TLS handshake ok ({tls.version() if tls else 'unknown version'})"


@functools.cache
def client_context(verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not verify:  # health checks of servers with self-signed certificates
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


# -- http and https ----------------------------------------------------------------


class _Response:
    """httptools callbacks: keep the status and the start of the body."""

    def __init__(self, want_body: bool):
        self.want_body = want_body
        self.body = bytearray()
        self.done = False

    def on_headers_complete(self) -> None:
        if not self.want_body:
            self.done = True

    def on_body(self, data: bytes) -> None:
        room = BODY_LIMIT - len(self.body)
        if room > 0:
            self.body += data[:room]
        if len(self.body) >= BODY_LIMIT:
            self.done = True

    def on_message_complete(self) -> None:
        self.done = True


def http_request(check: HealthCheck, address: str, port: int, tls: bool) -> bytes:
    # RFC 9110 §7.2: Host is the target's authority; the default port is left out.
    if check.host:
        host = check.host
    elif port == (443 if tls else 80):
        host = bracket_host(address)
    else:
        host = join_host_port(address, port)
    return (f"{check.method} {check.path} HTTP/1.1\r\nHost: {host}\r\n"
            f"User-Agent: {USER_AGENT}\r\nAccept: */*\r\nConnection: close\r\n\r\n").encode("latin-1")


async def _http(check: HealthCheck, address: str, port: int, tls: bool) -> Result:
    context = client_context(check.verify_tls) if tls else None
    reader, writer = await asyncio.open_connection(
        address, port, ssl=context, server_hostname=(check.host or address) if tls else None)
    try:
        writer.write(http_request(check, address, port, tls))
        # A HEAD response has no body (RFC 9110 §9.3.2), whatever its Content-Length says.
        response = _Response(want_body=check.expect_body is not None and check.method != "HEAD")
        parser = httptools.HttpResponseParser(response)
        while not response.done:
            data = await reader.read(65536)
            if not data:
                break  # a body delimited by the end of the connection (RFC 9112 §6.3)
            parser.feed_data(data)
    finally:
        writer.close()
    try:
        status = parser.get_status_code()
    except httptools.HttpParserError:
        status = 0
    if not status:
        return False, "connection closed before a response"
    return judge_response(check, status, bytes(response.body))


def judge_response(check: HealthCheck, status: int, body: bytes) -> Result:
    wanted = status in check.expect_status if check.expect_status else 200 <= status < 400
    if not wanted:
        return False, f"HTTP {status}"
    if check.expect_body is not None:
        if not _pattern(check.expect_body).search(body.decode("utf-8", "replace")):
            return False, f"HTTP {status}, body does not match {check.expect_body!r}"
    return True, f"HTTP {status}"


@functools.lru_cache(maxsize=256)
def _pattern(regex: str) -> re.Pattern[str]:
    return re.compile(regex)


async def probe_http(check: HealthCheck, address: str, port: int) -> Result:
    return await _http(check, address, port, tls=False)


async def probe_https(check: HealthCheck, address: str, port: int) -> Result:
    return await _http(check, address, port, tls=True)


# -- script ------------------------------------------------------------------------


def script_environment(address: str, port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "FULCRUM_SERVER_ADDRESS": address,
        "FULCRUM_SERVER_PORT": str(port),
        # HAProxy's external-check names, so its check scripts work unchanged.
        "HAPROXY_SERVER_ADDR": address,
        "HAPROXY_SERVER_PORT": str(port),
    })
    return env


def script_command(command: str, address: str) -> str:
    # Piranha/nanny's send_program token: %h is the real server's address.
    # The address is a validated IP or host name, so it is safe in a shell line.
    return command.replace("%h", address)


async def probe_script(check: HealthCheck, address: str, port: int) -> Result:
    """keepalived MISC_CHECK style: run `command` with /bin/sh; exit 0 = up.
    The script runs in its own process group so a timeout kills its children too."""
    assert check.command is not None  # the model requires it for kind "script"
    process = await asyncio.create_subprocess_exec(
        "/bin/sh", "-c", script_command(check.command, address),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, env=script_environment(address, port),
        start_new_session=True)
    try:
        _, stderr = await process.communicate()
    finally:
        if process.returncode is None:  # timed out or cancelled
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    code = process.returncode
    assert code is not None  # waited for above
    if code == 0:
        return True, "exit status 0"
    reason = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
    first_line = stderr.decode("utf-8", "replace").strip().splitlines()[:1]
    return False, f"{reason}: {first_line[0][:200]}" if first_line else reason


async def probe_none(check: HealthCheck, address: str, port: int) -> Result:
    return True, "no active check"


PROBES: dict[str, Probe] = {
    "none": probe_none,
    "tcp": probe_tcp,
    "http": probe_http,
    "https": probe_https,
    "tls": probe_tls,
    "script": probe_script,
}
