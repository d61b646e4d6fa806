"""The `admin` section: where the admin listener answers, who may log in, and how.

The whole section is node-local (never synced, like `sync`): each node names its own
listen addresses and certificate, and a synced user list would let one node's operator
lock every other node's out. Passwords are stored as scrypt hashes made by
`fulcrum admin passwd USER` (admin/auth.py); bearer tokens as SHA-256 digests made by
`fulcrum admin token NAME` (a random 32-byte token needs no slow hash)."""

from __future__ import annotations

import base64

from pydantic import Field, field_validator, model_validator

from fulcrum.config.strict import Strict
from fulcrum.config.types import Duration

DEFAULT_PORT = 3636  # Piranha's port


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def parse_hash(value: str) -> tuple[int, int, int, bytes, bytes]:
    """(N, r, p, salt, hash) of a `scrypt$N$r$p$SALT$HASH` password hash (admin/auth.py
    makes and checks them); ValueError when it is not one."""
    parts = value.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError("not a scrypt$N$r$p$salt$hash password hash")
    n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
    if n < 2 or n & (n - 1) or n > 2**20 or not 1 <= r <= 32 or not 1 <= p <= 16:
        raise ValueError("scrypt parameters out of range")
    return n, r, p, _unb64(parts[4]), _unb64(parts[5])


def check_hash_format(value: str) -> str | None:
    """None when `value` is a usable password hash, else what is wrong with it."""
    try:
        parse_hash(value)
    except ValueError as err:
        return str(err) if "scrypt" in str(err) else "not a scrypt$N$r$p$salt$hash password hash"
    return None


def check_token_format(value: str) -> str | None:
    kind, _, hexdigest = value.partition("$")
    if kind != "sha256" or len(hexdigest) != 64 or any(c not in "0123456789abcdef" for c in hexdigest):
        return "not a sha256$HEX token digest"
    return None


def _endpoint_type() -> type[Strict]:
    # imported late: model.py imports this module at its end (after Endpoint is defined)
    from fulcrum.config.model import Endpoint

    return Endpoint


class AdminTls(Strict):
    """The admin listener over HTTPS (TLS 1.2 and 1.3), keys as in `http.tls`."""

    cert: str = Field(description="PEM certificate chain")
    key: str = Field(description="PEM private key")


class Admin(Strict):
    listen: list[str] = Field(
        default_factory=lambda: [f"127.0.0.1:{DEFAULT_PORT}"], min_length=1,
        description="addresses of the admin web UI, REST API and /metrics (v4 and/or v6; port 3636 by default)")
    tls: AdminTls | None = Field(None, description="serve HTTPS (then session cookies are Secure)")
    users: dict[str, str] = Field(
        default_factory=dict,
        description="user name -> password hash, made by `fulcrum admin passwd USER`")
    tokens: dict[str, str] = Field(
        default_factory=dict,
        description="token name -> token digest, made by `fulcrum admin token NAME` (bearer auth for scripts)")
    metrics_public: bool = Field(False, description="answer /metrics without credentials")
    session_timeout: Duration = Field(3600.0, gt=0, description="a browser session ends after this long idle")
    login_failures: int = Field(5, ge=1, description="failed logins allowed per client address within login_window")
    login_window: Duration = Field(300.0, gt=0, description="after login_failures failures, that address waits this long")
    state_dir: str = Field(
        "/var/lib/fulcrum",
        description="without a sync section, versions for rollback are kept in STATE_DIR/versions")
    keep: int = Field(20, ge=2, le=10000, description="versions kept for rollback (without a sync section)")

    @field_validator("listen")
    @classmethod
    def _addresses(cls, values: list[str]) -> list[str]:
        endpoint = _endpoint_type()
        out = []
        for value in values:
            text = str(value)
            if text.isdigit():
                text = f"127.0.0.1:{text}"
            out.append(str(endpoint.model_validate(text)))
        if len(set(out)) != len(out):
            raise ValueError("an address is listed twice")
        return out

    @field_validator("users")
    @classmethod
    def _hashes(cls, users: dict[str, str]) -> dict[str, str]:
        for name, value in users.items():
            if not name or ":" in name:
                raise ValueError(f"user name {name!r}: must be non-empty and have no ':'")
            problem = check_hash_format(value)
            if problem:
                raise ValueError(f"user {name!r}: {problem} (make one with `fulcrum admin passwd {name}`)")
        return users

    @field_validator("tokens")
    @classmethod
    def _digests(cls, tokens: dict[str, str]) -> dict[str, str]:
        for name, value in tokens.items():
            problem = check_token_format(value)
            if problem:
                raise ValueError(f"token {name!r}: {problem} (make one with `fulcrum admin token {name}`)")
        return tokens

    @model_validator(mode="after")
    def _someone(self) -> Admin:
        if not self.users and not self.tokens:
            raise ValueError("users: give at least one user (`fulcrum admin passwd USER`) or token;"
                             " nothing answers without credentials")
        return self
