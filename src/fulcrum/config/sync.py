"""The `sync` section: how this node shares its configuration with its peers.

Every message is signed with the shared secret (HMAC-SHA256) and carries its time and a
nonce (sync_state.Freshness), which proves it comes from a cluster node and is fresh but
does not hide it. Give tls_cert/tls_key/tls_ca to also encrypt it, with each side's
certificate checked against the cluster's own CA (mutual TLS). A configuration whose
shared part holds a secret (a sticky-cookie key) is refused without TLS
(split.shared_secrets, checked by config/load.py).

The whole section is node-local (each node lists its own address and the others'),
so it is never itself synced: a synced secret change would lock the peers out."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from fulcrum.config.strict import Strict
from fulcrum.config.types import Duration, join_host_port, split_host_port

MIN_SECRET = 16  # characters; HMAC-SHA256 keys shorter than this are guessable


def _host_port(text: str) -> str:
    host, port = split_host_port(text)
    return join_host_port(host, port)


HostPort = Annotated[str, AfterValidator(_host_port)]


class SyncSettings(Strict):
    node: str | None = Field(None, description="this node's id, unique in the cluster; default: the host name")
    listen: HostPort = Field(description="address:port this node accepts peers' changes on (its cluster address)")
    peers: list[HostPort] = Field(min_length=1, description="the other nodes' sync addresses")
    secret: str | None = Field(None, description="shared HMAC-SHA256 key (prefer secret_file)")
    secret_file: str | None = Field(None, description="file holding the shared key; must not be readable by group or others")
    state_dir: str = Field("/var/lib/fulcrum", description="versions kept for rollback live in STATE_DIR/sync")
    keep: int = Field(20, ge=2, le=10000, description="versions kept for rollback")
    interval: Duration = Field(5.0, gt=0, description="exchange latest versions with the peers this often (catch-up)")
    timeout: Duration = Field(3.0, gt=0, description="limit of every connect, TLS handshake and read")
    max_clock_skew: Duration = Field(60.0, gt=0, description="messages sent longer ago (or later) than this are refused "
                                     "as replays: keep the nodes' clocks in step (NTP)")
    tls_cert: str | None = Field(None, description="PEM certificate of this node: sync over mutual TLS")
    tls_key: str | None = Field(None, description="its private key")
    tls_ca: str | None = Field(None, description="PEM CA that signs every node's certificate (a private CA)")

    @model_validator(mode="after")
    def _one_secret(self) -> SyncSettings:
        if (self.secret is None) == (self.secret_file is None):
            raise ValueError("give exactly one of secret and secret_file")
        if self.secret is not None and len(self.secret) < MIN_SECRET:
            raise ValueError(f"secret must have at least {MIN_SECRET} characters")
        tls = (self.tls_cert, self.tls_key, self.tls_ca)
        if any(tls) and not all(tls):
            raise ValueError("TLS needs all of tls_cert, tls_key and tls_ca")
        if self.node is not None and not self.node.strip():
            raise ValueError("node must not be empty")
        return self

    def node_id(self) -> str:
        return self.node or socket.gethostname()

    def read_secret(self) -> bytes:
        """The key; a secret file must be private (mode 0600 or stricter), as ssh insists."""
        if self.secret is not None:
            return self.secret.encode()
        assert self.secret_file is not None
        status = os.stat(self.secret_file)
        if status.st_mode & 0o077:
            raise PermissionError(f"{self.secret_file}: readable by group or others; chmod 600 it")
        key = Path(self.secret_file).read_bytes().strip()
        if len(key) < MIN_SECRET:
            raise ValueError(f"{self.secret_file}: key shorter than {MIN_SECRET} bytes")
        return key
