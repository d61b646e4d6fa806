"""HTTP stickiness: which server a request belongs to. Pure.

- `cookie` (mod_proxy_balancer stickysession): the route is the part after the last '.' of
  a session cookie's value (`JSESSIONID=abc.node1`) or of a path parameter
  (`/app;jsessionid=abc.node1`); servers carry a `route`. Several names: `JSESSIONID|jsessionid`.
- `insert`: fulcrum sets its own cookie `<id>.<mac>`: id is the server's route (or a short hash
  of host:port), mac an HMAC-SHA256 of pool name and id under the pool secret. Stateless, so a
  second node with the same configuration reads the cookie the same way, and a client cannot
  point itself at a server by editing the cookie."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence

from fulcrum.balance.base import Backend

MAC_HEX = 16  # 64 bits of HMAC: forging one by trial is out of reach for a client


def cookie_values(cookie_headers: Iterable[bytes], name: bytes) -> list[bytes]:
    """Values of cookie `name` in Cookie header lines (RFC 6265 §5.4: `a=b; c=d`)."""
    found = []
    for line in cookie_headers:
        for pair in line.split(b";"):
            key, eq, value = pair.strip().partition(b"=")
            if eq and key == name:
                found.append(value.strip().strip(b'"'))
    return found


def route_from_request(names: Sequence[bytes], cookie_headers: Sequence[bytes], target: bytes) -> bytes | None:
    """mod_proxy_balancer: the route after the last '.' of the first sticky cookie or path parameter."""
    for name in names:
        for value in cookie_values(cookie_headers, name):
            if b"." in value:
                return value.rsplit(b".", 1)[1]
        path = target.split(b"?", 1)[0]
        marker = b";" + name + b"="
        at = path.find(marker)
        if at >= 0:
            value = path[at + len(marker):].split(b";", 1)[0].split(b"/", 1)[0]
            if b"." in value:
                return value.rsplit(b".", 1)[1]
    return None


def backend_by_route(backends: Iterable[Backend], route: bytes) -> Backend | None:
    text = route.decode("latin-1")
    for backend in backends:
        if backend.route == text:
            return backend
    return None


def derived_secret(pool_name: str, backends: Iterable[Backend]) -> bytes:
    """Used when no secret is configured: the same on every node with the same pool, but
    guessable, so the docs ask for a configured secret."""
    material = pool_name + "|" + "|".join(sorted(b.key for b in backends))
    return hashlib.sha256(material.encode()).digest()


class InsertCookie:
    def __init__(self, pool_name: str, secret: bytes):
        self.pool_name = pool_name.encode()
        self.secret = secret

    @staticmethod
    def server_id(backend: Backend) -> bytes:
        if backend.route:
            return backend.route.encode()
        return hashlib.sha256(backend.key.encode()).hexdigest()[:12].encode()

    def _mac(self, server_id: bytes) -> bytes:
        mac = hmac.new(self.secret, self.pool_name + b"\0" + server_id, hashlib.sha256)
        return mac.hexdigest()[:MAC_HEX].encode()

    def value_for(self, backend: Backend) -> bytes:
        sid = self.server_id(backend)
        return sid + b"." + self._mac(sid)

    def backend_for(self, value: bytes, backends: Iterable[Backend]) -> Backend | None:
        """The server a cookie value names, or None if the value is forged or stale."""
        sid, dot, mac = value.rpartition(b".")
        if not dot or not hmac.compare_digest(mac, self._mac(sid)):
            return None
        for backend in backends:
            if self.server_id(backend) == sid:
                return backend
        return None


def set_cookie(name: bytes, value: bytes, secure: bool, samesite: str, max_age: float) -> bytes:
    parts = [name + b"=" + value, b"Path=/", b"HttpOnly", b"SameSite=" + samesite.encode()]
    if secure or samesite == "None":  # browsers drop SameSite=None without Secure
        parts.append(b"Secure")
    if max_age:
        parts.append(b"Max-Age=%d" % int(max_age))
    return b"; ".join(parts)
