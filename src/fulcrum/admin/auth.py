"""Credentials of the admin plane, pure: password hashes, token digests, sessions with
their CSRF tokens, and the failed-login limiter. The clock is passed in.

Password hashes are scrypt (RFC 7914) from the standard library:
`scrypt$N$r$p$SALT$HASH` with SALT and HASH in unpadded base64. N=2**15, r=8, p=1 costs
about 32 MiB and ~0.1 s per check: slow for a guesser, fine for a login. HTTP Basic
sends the password on every request, so a verified (user, password) pair is remembered
for a short while under a keyed digest (never the password itself) instead of paying
scrypt per request.

Tokens are 32 random bytes shown once; the configuration holds `sha256$HEX` of them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any

from fulcrum.config.admin import parse_hash

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
SCRYPT_MAXMEM = 64 * 1024 * 1024
HASH_BYTES = 32


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def hash_password(password: str, salt: bytes | None = None, n: int = SCRYPT_N) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P,
                            maxmem=SCRYPT_MAXMEM, dklen=HASH_BYTES)
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        n, r, p, salt, expected = parse_hash(stored)
    except ValueError:
        return False
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p,
                            maxmem=SCRYPT_MAXMEM, dklen=len(expected))
    return hmac.compare_digest(digest, expected)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return "sha256$" + hashlib.sha256(token.encode()).hexdigest()


def token_user(token: str, tokens: dict[str, str]) -> str | None:
    """The name of the configured token `token` is, or None."""
    digest = token_digest(token)
    for name, stored in tokens.items():
        if hmac.compare_digest(digest, stored):
            return name
    return None


# -- sessions ----------------------------------------------------------------------------

@dataclass
class Session:
    user: str
    csrf: str
    last_seen: float
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)  # previewed edits by id
    flash: str = ""  # one message for the next page (the result of an action)


class Sessions:
    """Browser sessions in memory: a restart of the admin plane logs everyone out."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self._by_id: dict[str, Session] = {}

    def create(self, user: str, now: float) -> tuple[str, Session]:
        self._expire(now)
        sid = secrets.token_urlsafe(32)
        session = self._by_id[sid] = Session(user, secrets.token_urlsafe(32), now)
        return sid, session

    def get(self, sid: str | None, now: float) -> Session | None:
        if not sid:
            return None
        session = self._by_id.get(sid)
        if session is None:
            return None
        if now - session.last_seen > self.timeout:
            del self._by_id[sid]
            return None
        session.last_seen = now
        return session

    def drop(self, sid: str | None) -> None:
        if sid:
            self._by_id.pop(sid, None)

    def _expire(self, now: float) -> None:
        for sid in [s for s, session in self._by_id.items() if now - session.last_seen > self.timeout]:
            del self._by_id[sid]


def csrf_ok(session: Session, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(session.csrf.encode(), given.encode())


# -- failed logins ----------------------------------------------------------------------------

class LoginLimiter:
    """At most `failures` failed logins per client address within `window` seconds;
    then that address is refused until its oldest failure is `window` old."""

    MAX_TRACKED = 10000  # addresses remembered; the oldest are forgotten first

    def __init__(self, failures: int, window: float):
        self.failures = failures
        self.window = window
        self._seen: dict[str, list[float]] = {}

    def _recent(self, client: str, now: float) -> list[float]:
        times = [t for t in self._seen.get(client, []) if now - t < self.window]
        if times:
            self._seen[client] = times
        else:
            self._seen.pop(client, None)
        return times

    def retry_after(self, client: str, now: float) -> float:
        """0 when `client` may try now, else seconds to wait."""
        times = self._recent(client, now)
        if len(times) < self.failures:
            return 0.0
        return max(0.0, times[-self.failures] + self.window - now)

    def failed(self, client: str, now: float) -> None:
        self._recent(client, now)
        self._seen.setdefault(client, []).append(now)
        if len(self._seen) > self.MAX_TRACKED:
            self._seen.pop(next(iter(self._seen)))

    def succeeded(self, client: str) -> None:
        self._seen.pop(client, None)


class VerifiedCache:
    """(user, password) pairs verified recently, under a per-process HMAC key, so HTTP
    Basic does not pay scrypt on every request. Entries live `ttl` seconds and only
    while the user's stored hash is unchanged."""

    def __init__(self, ttl: float = 60.0):
        self.ttl = ttl
        self._key = secrets.token_bytes(32)
        self._seen: dict[bytes, float] = {}

    def _id(self, user: str, password: str, stored: str) -> bytes:
        return hmac.new(self._key, "\0".join((user, password, stored)).encode(), hashlib.sha256).digest()

    def hit(self, user: str, password: str, stored: str, now: float) -> bool:
        at = self._seen.get(self._id(user, password, stored))
        return at is not None and now - at < self.ttl

    def remember(self, user: str, password: str, stored: str, now: float) -> None:
        if len(self._seen) > 1000:
            self._seen = {k: t for k, t in self._seen.items() if now - t < self.ttl}
        self._seen[self._id(user, password, stored)] = now
