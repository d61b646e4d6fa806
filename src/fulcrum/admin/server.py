"""The admin process: an aiohttp server for the web UI (ui.py), the REST API (api.py)
and /metrics, with the one gate every request passes (`gate`).

The gate, in order:
1. security headers on every answer (a Content-Security-Policy without inline
   scripts or styles, no framing, no sniffing, no referrer to other sites, no caching);
2. the login page, its form post, static assets and (with admin.metrics_public)
   /metrics answer without credentials; nothing else does;
3. credentials: a bearer token, HTTP Basic (scripts), or the session cookie (browsers);
   no Basic challenge is ever sent, so a browser never caches a password it would
   later send on its own;
4. a state-changing request (POST, PUT, PATCH, DELETE) that a browser marks as coming
   from another site (Origin, Sec-Fetch-Site) is refused, the login form included; one
   made with the session cookie must also carry the session's CSRF token (X-CSRF-Token header or csrf_token form field); one
   made with Basic or a token must be JSON, which a cross-site HTML form cannot send;
5. failed logins (form or Basic) are counted per client address: after
   admin.login_failures within admin.login_window the address gets 429 until the
   window passes, and each failure is logged.
Without credentials the API answers 401 and the UI redirects to the login page."""

from __future__ import annotations

import asyncio
import base64
import collections
import logging
import os
import signal
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from aiohttp import web

from fulcrum.admin.auth import (
    LoginLimiter,
    Session,
    Sessions,
    VerifiedCache,
    csrf_ok,
    token_user,
    verify_password,
)
from fulcrum.admin.node_client import NodeClient
from fulcrum.config.admin import Admin
from fulcrum.config.types import split_host_port

log = logging.getLogger("fulcrum.admin")

WEB = Path(__file__).parent / "web"
COOKIE = "fulcrum_session"
MAX_BODY = 16 * 1024 * 1024
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
CHANGING = {"POST", "PUT", "PATCH", "DELETE"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Caller:
    user: str
    how: str  # session, basic, token
    client: str
    session: Session | None = None

    @property
    def by(self) -> str:
        return f"admin user {self.user} from {self.client}"


class AdminState:
    def __init__(self, settings: Admin, socket_path: str, node_pid: int):
        self.settings = settings
        self.node = NodeClient(socket_path)
        self.node_pid = node_pid
        self.sessions = Sessions(settings.session_timeout)
        self.limiter = LoginLimiter(settings.login_failures, settings.login_window)
        self.verified = VerifiedCache()
        self.reloads: dict[str, int] = {}  # config changes through this plane, by result
        self.samples: collections.deque[tuple[float, dict[str, tuple[int, int]]]] = collections.deque(maxlen=200)

    @property
    def secure(self) -> bool:
        return self.settings.tls is not None

    async def check_password(self, user: str, password: str, now: float) -> bool:
        stored = self.settings.users.get(user)
        if stored is None:
            # the same work as a real check: a wrong user name takes as long as a wrong password
            stored = "scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            await asyncio.get_running_loop().run_in_executor(None, verify_password, password, stored)
            return False
        if self.verified.hit(user, password, stored, now):
            return True
        ok = await asyncio.get_running_loop().run_in_executor(None, verify_password, password, stored)
        if ok:
            self.verified.remember(user, password, stored, now)
        return ok

    def log_change(self, caller: Caller, what: str) -> None:
        log.info("admin: %s by %s", what, caller.by)


STATE: web.AppKey[AdminState] = web.AppKey("state", AdminState)


def client_address(request: web.Request) -> str:
    return request.remote or "?"


def state_of(request: web.Request) -> AdminState:
    return request.app[STATE]


def caller_of(request: web.Request) -> Caller:
    caller: Caller = request["caller"]
    return caller


def is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/")


def problem(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


@web.middleware
async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await _gate(request, handler)
    except web.HTTPException as exc:
        response = exc
    _secure_headers(response)
    return response


def _secure_headers(response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")  # no-referrer would make forms send Origin: null
    headers.setdefault("Cache-Control", "no-store")


def _cross_site(request: web.Request) -> bool:
    """A browser says where a request comes from (Origin, or Sec-Fetch-Site): a change sent
    from another site's page is refused whatever credentials it carries. Scripts send
    neither header and are judged by their credentials alone."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return True
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin == "null"
    return origin.partition("://")[2].rstrip("/") != request.host


async def _gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = state_of(request)
    path = request.path
    if request.method in CHANGING and _cross_site(request):
        log.warning("admin: %s %s from another site (Origin %s) refused, from %s", request.method, path,
                    request.headers.get("Origin"), client_address(request))
        return problem(403, "cross-site request refused")
    if path == "/login" or path.startswith("/static/"):
        return await handler(request)
    if path == "/favicon.ico":
        return web.Response(status=204)  # browsers ask; there is none
    if path == "/metrics" and state.settings.metrics_public:
        return await handler(request)
    now = time.monotonic()
    client = client_address(request)
    caller, refused = await _identify(request, state, client, now)
    if refused is not None:
        return refused
    if caller is None:
        if is_api(request) or path == "/metrics":
            return problem(401, "authentication required: a session, HTTP Basic or a bearer token",)
        raise web.HTTPSeeOther("/login")
    if request.method in CHANGING:
        if caller.session is not None:
            given = request.headers.get("X-CSRF-Token")
            if given is None and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
                given = (await request.post()).get("csrf_token")  # type: ignore[assignment]
            if not csrf_ok(caller.session, given if isinstance(given, str) else None):
                log.warning("admin: %s %s without a valid CSRF token, from %s (user %s); refused",
                            request.method, path, client, caller.user)
                return problem(403, "missing or wrong CSRF token")
        elif request.content_type != "application/json":
            return problem(415, "send JSON (Content-Type: application/json)")
    request["caller"] = caller
    return await handler(request)


async def _identify(request: web.Request, state: AdminState, client: str,
                    now: float) -> tuple[Caller | None, web.StreamResponse | None]:
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        name = token_user(credentials.strip(), state.settings.tokens)
        if name is None:
            return await _failed(state, client, now, "a wrong bearer token")
        return Caller(f"token:{name}", "token", client), None
    if scheme == "basic":
        wait = state.limiter.retry_after(client, now)
        if wait:
            return None, _too_many(wait)
        try:
            user, _, password = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None, problem(400, "malformed Basic credentials")
        if not await state.check_password(user, password, now):
            return await _failed(state, client, now, f"a wrong password for user {user!r} (Basic)")
        state.limiter.succeeded(client)
        return Caller(user, "basic", client), None
    session = state.sessions.get(request.cookies.get(COOKIE), now)
    if session is not None and session.user in state.settings.users:
        return Caller(session.user, "session", client, session), None
    return None, None


async def _failed(state: AdminState, client: str, now: float,
                  what: str) -> tuple[Caller | None, web.StreamResponse | None]:
    state.limiter.failed(client, now)
    log.warning("admin: failed login from %s: %s", client, what)
    return None, problem(401, "wrong credentials")


def _too_many(wait: float) -> web.Response:
    response = problem(429, f"too many failed logins from this address; try again in {wait:.0f}s")
    response.headers["Retry-After"] = str(max(1, round(wait)))
    return response


# -- the application ---------------------------------------------------------------------------

def make_app(settings: Admin, socket_path: str, node_pid: int) -> web.Application:
    from fulcrum.admin import api, ui

    app = web.Application(middlewares=[gate], client_max_size=MAX_BODY)
    app[STATE] = AdminState(settings, socket_path, node_pid)
    api.add_routes(app)
    ui.add_routes(app)
    app.router.add_static("/static/", WEB / "static", append_version=False)
    return app


def tls_context(settings: Admin) -> ssl.SSLContext | None:
    if settings.tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.tls.cert, settings.tls.key)
    return context


async def run(settings: Admin, socket_path: str, node_pid: int, ready: Connection | None) -> None:
    app = make_app(settings, socket_path, node_pid)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        context = tls_context(settings)
        for address in settings.listen:
            host, port = split_host_port(address)
            await web.TCPSite(runner, host, port, ssl_context=context, reuse_address=True).start()
    except (OSError, ssl.SSLError, ValueError) as err:
        if ready is not None:
            ready.send(f"cannot listen on {', '.join(settings.listen)}: {err}")
        await runner.cleanup()
        return
    if ready is not None:
        ready.send("ready")
        ready.close()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    watch = loop.create_task(_watch_node(node_pid, stop))
    await stop.wait()
    watch.cancel()
    await runner.cleanup()


async def _watch_node(node_pid: int, stop: asyncio.Event) -> None:
    """A node killed outright cannot stop us: notice its going and stop too."""
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(1.0)
    log.warning("admin: the node (pid %d) is gone; stopping", node_pid)
    stop.set()


def serve(settings: Admin, socket_path: str, node_pid: int, ready: Connection | None = None) -> None:
    asyncio.run(run(settings, socket_path, node_pid, ready))
