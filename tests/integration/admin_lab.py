"""A node with an admin section run as a real `fulcrum run` process on loopback, HTTP
backends that answer their own name, and a small HTTP client (urllib) that keeps
cookies. Used by the admin HTTP tests and by the browser tests."""

from __future__ import annotations

import base64
import http.cookiejar
import http.server
import json
import os
import signal
import socket
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import tomli_w

from fulcrum.admin.auth import hash_password, new_token, token_digest
from tests.support import FULCRUM, free_port, wait_for

USER, PASSWORD = "alice", "correct horse"
START_TIMEOUT = 30.0


class NameHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = self.server.name.encode()  # type: ignore[attr-defined]
        self.server.hits += 1  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class Backend:
    def __init__(self, name: str, port: int | None = None):
        self.name = name
        self.port = port or free_port()
        self.server: http.server.ThreadingHTTPServer | None = None
        self.hits = 0

    def start(self) -> None:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), NameHandler)
        server.daemon_threads = True
        server.name = self.name  # type: ignore[attr-defined]
        server.hits = self.hits  # type: ignore[attr-defined]
        self.server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def count(self) -> int:
        return self.server.hits if self.server is not None else self.hits  # type: ignore[attr-defined]

    def stop(self) -> None:
        if self.server is not None:
            self.hits = self.server.hits  # type: ignore[attr-defined]
            self.server.shutdown()
            self.server.server_close()
            self.server = None


class Answer:
    def __init__(self, status: int, headers: Any, body: bytes):
        self.status, self.headers, self.body = status, headers, body

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """HTTP to the admin listener, with or without credentials; keeps cookies."""

    def __init__(self, base: str, basic: tuple[str, str] | None = None, token: str | None = None):
        self.base = base
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies),
                                                  _NoRedirect())
        self.headers: dict[str, str] = {}
        if basic is not None:
            self.headers["Authorization"] = "Basic " + base64.b64encode(":".join(basic).encode()).decode()
        if token is not None:
            self.headers["Authorization"] = f"Bearer {token}"

    def request(self, method: str, path: str, json_body: Any = None, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> Answer:
        data, sent = None, dict(self.headers)
        if json_body is not None:
            data, sent["Content-Type"] = json.dumps(json_body).encode(), "application/json"
        if form is not None:
            from urllib.parse import urlencode

            data, sent["Content-Type"] = urlencode(form).encode(), "application/x-www-form-urlencoded"
        sent.update(headers or {})
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=sent)
        try:
            with self.opener.open(request, timeout=30) as response:
                return Answer(response.status, response.headers, response.read())
        except urllib.error.HTTPError as err:
            return Answer(err.code, err.headers, err.read())

    def get(self, path: str, **kw: Any) -> Answer:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Answer:
        return self.request("POST", path, **kw)

    def login(self, user: str = USER, password: str = PASSWORD) -> str:
        """Log in through the form; returns the CSRF token of the session."""
        answer = self.post("/login", form={"user": user, "password": password})
        assert answer.status == 303, answer.text
        page = self.get("/").text
        marker = 'name="csrf_token" value="'
        return page.split(marker, 1)[1].split('"', 1)[0]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None


class AdminLab:
    """One node (`fulcrum run`) with services over the given backends and an admin section."""

    def __init__(self, root: Path, backends: int = 2, name: str = "lb0"):
        self.root = root
        self.name = name
        self.backends = [Backend(f"s{i}") for i in range(backends)]
        self.port = free_port()
        self.admin_port = free_port()
        self.token = new_token()
        self.path = root / f"{name}.toml"
        self.log = root / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def config(self, **extra: Any) -> dict[str, Any]:
        data: dict[str, Any] = {
            "services": {"web": {"listen": [f"127.0.0.1:{self.port}"], "pool": "web"}},
            "pools": {"web": {"servers": [f"127.0.0.1:{b.port}" for b in self.backends],
                              "health": {"kind": "tcp", "interval": "200ms", "timeout": "100ms",
                                         "rise": 1, "fall": 1}}},
            "admin": {"listen": [f"127.0.0.1:{self.admin_port}"], "state_dir": str(self.root / f"{self.name}-state"),
                      "users": {USER: hash_password(PASSWORD, n=2**10)},
                      "tokens": {"ci": token_digest(self.token)}},
        }
        for key, value in extra.items():
            data[key] = value
        return data

    def start(self, wait: bool = True, **extra: Any) -> AdminLab:
        for backend in self.backends:
            if backend.server is None:
                backend.start()
        self.path.write_text(tomli_w.dumps(self.config(**extra)))
        self.process = subprocess.Popen([FULCRUM, "run", "-c", str(self.path)], stdout=self.log.open("ab"),
                                        stderr=subprocess.STDOUT, start_new_session=True)
        if wait:
            wait_for(self._admin_up, START_TIMEOUT)
        return self

    def _admin_up(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"fulcrum exited: {self.log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", self.admin_port), timeout=0.5).close()
        except OSError:
            return False
        return True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def client(self, **kw: Any) -> Client:
        return Client(self.url, **kw)

    def api(self) -> Client:
        return Client(self.url, basic=(USER, PASSWORD))

    def file(self) -> dict[str, Any]:
        """The configuration file as the model reads it (servers written short or long)."""
        from fulcrum.config.load import load_file

        data: dict[str, Any] = load_file(self.path).model_dump(mode="json")
        return data

    def through_proxy(self) -> str:
        """One request through the proxy: the name of the backend that answered."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            reply = b""
            while chunk := sock.recv(4096):
                reply += chunk
        return reply.split(b"\r\n\r\n", 1)[-1].decode()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        for backend in self.backends:
            backend.stop()

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""
