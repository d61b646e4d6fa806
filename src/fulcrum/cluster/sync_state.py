"""Config sync, the pure core: versioned documents, their signatures, and what a node
does with a local change, a peer's offer or a peer's hello. No I/O and no clock: the
edge (sync.py) passes the time in and carries out the returned decision.

Versions. Every shared configuration is a document {version, node, time, config,
hmac}. Documents are ordered by the key (version, node): a higher version wins, and
two nodes that made the same version concurrently are told apart by node id (the
higher id wins), so every node picks the same winner without a coordinator. A local
change becomes version max(every version seen) + 1.

Authentication. The document's HMAC-SHA256 (RFC 2104) covers its canonical JSON
(sorted keys, no spaces, UTF-8), so a document relayed by a third node is still
proven to come from a holder of the shared secret. Each message on the wire is
signed the same way (sync.py).

Replay. Every message carries its sending time and a random nonce under the HMAC
(Freshness below): a message older or newer than `max_clock_skew`, one sent before
this node started, or one already received is refused. So a captured message is good
for nothing once the window has passed, and nothing captured before a restart is ever
accepted, even with a wiped state directory (the start time is the floor, so no disk
state is needed for this). A reply must echo its request's nonce. A replayed offer
that got through would still carry a version not newer than the node's, and be ignored.

Loops. A node that applies a peer's document gets, through the node's reload hook,
a "local change" whose shared part equals that document: no new version is made,
so a synced change never bounces back as a new one."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

Key = tuple[int, str]  # (version, node): the order of documents


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(body: dict[str, Any], secret: bytes) -> str:
    return hmac.new(secret, canonical(body), hashlib.sha256).hexdigest()


def signed(body: dict[str, Any], secret: bytes) -> dict[str, Any]:
    return {**body, "hmac": sign(body, secret)}


def verified(message: Any, secret: bytes) -> dict[str, Any] | None:
    """The message without its `hmac`, or None when the signature is missing or wrong."""
    if not isinstance(message, dict) or not isinstance(message.get("hmac"), str):
        return None
    body = {k: v for k, v in message.items() if k != "hmac"}
    if not hmac.compare_digest(sign(body, secret), message["hmac"]):
        return None
    return body


def digest(config: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(config)).hexdigest()


@dataclass(frozen=True)
class Document:
    version: int
    node: str
    time: float
    config: dict[str, Any] = field(compare=False, repr=False)

    @property
    def key(self) -> Key:
        return (self.version, self.node)

    def body(self) -> dict[str, Any]:
        return {"version": self.version, "node": self.node, "time": self.time, "config": self.config}

    def to_json(self, secret: bytes) -> dict[str, Any]:
        return signed(self.body(), secret)

    @classmethod
    def from_json(cls, data: Any, secret: bytes) -> Document:
        """Raises ValueError when the document is malformed or its signature is wrong."""
        body = verified(data, secret)
        if body is None:
            raise ValueError("bad or missing hmac")
        version, node, when, config = (body.get(k) for k in ("version", "node", "time", "config"))
        if (not isinstance(version, int) or isinstance(version, bool) or version < 1
                or not isinstance(node, str) or not node or not isinstance(when, int | float)
                or not isinstance(config, dict)):
            raise ValueError("malformed document")
        return cls(version, node, float(when), config)


# -- decisions --------------------------------------------------------------------

@dataclass(frozen=True)
class Ignore:
    reason: str


@dataclass(frozen=True)
class Publish:
    """A new local version: store it and offer it to every peer."""

    document: Document


@dataclass(frozen=True)
class Apply:
    """A newer version from a peer with other content: merge, validate, write, reload."""

    document: Document


@dataclass(frozen=True)
class Adopt:
    """A newer version whose content this node already runs: store it, no reload."""

    document: Document


@dataclass(frozen=True)
class Offer:
    """The peer is behind: send it our latest document."""

    document: Document


Decision = Ignore | Publish | Apply | Adopt | Offer


class SyncState:
    """What one node knows: its current document and the highest version it has seen."""

    def __init__(self, node: str, latest: Document | None = None):
        self.node = node
        self.latest = latest
        self.highest_seen = latest.version if latest else 0

    @property
    def key(self) -> Key:
        return self.latest.key if self.latest else (0, "")

    def local_change(self, shared: dict[str, Any], now: float) -> Decision:
        """The node applied a configuration (file, command, start): version it if new."""
        if self.latest is not None and digest(shared) == digest(self.latest.config):
            return Ignore("shared settings unchanged")
        version = max(self.highest_seen, self.key[0]) + 1
        document = Document(version, self.node, now, shared)
        self._set(document)
        return Publish(document)

    def offered(self, document: Document) -> Decision:
        """A peer sent a (verified) document."""
        self.seen(document.version)
        if document.key <= self.key:
            return Ignore(f"version {document.version} from {document.node} is not newer than "
                          f"{self.key[0]} from {self.key[1] or '-'}")
        if self.latest is not None and digest(document.config) == digest(self.latest.config):
            return Adopt(document)
        return Apply(document)

    def hello(self, peer_key: Key) -> Decision:
        """A peer told us its latest key: offer ours if it is behind."""
        self.seen(peer_key[0])
        if self.latest is not None and peer_key < self.key:
            return Offer(self.latest)
        return Ignore("peer is not behind")

    def seen(self, version: int) -> None:
        self.highest_seen = max(self.highest_seen, version)

    def applied(self, document: Document) -> None:
        """The document is now this node's configuration (after Apply or Adopt)."""
        if document.key > self.key:
            self._set(document)

    def restore(self, previous: Document | None) -> None:
        """An Apply failed: the node still runs `previous`."""
        self.latest = previous

    def _set(self, document: Document) -> None:
        self.latest = document
        self.seen(document.version)


# -- freshness of messages ---------------------------------------------------------------

NONCE_BYTES = 16


class Freshness:
    """Which signed messages are fresh: sent within `window` seconds of `now`, not before
    this node started (`started`), and not seen before (nonces are remembered for as long
    as their message could still be inside the window)."""

    def __init__(self, window: float, started: float):
        self.window = window
        self.floor = started
        self.seen: dict[str, float] = {}  # nonce -> message time

    def refuse(self, message: dict[str, Any], now: float) -> str | None:
        """Why `message` (already verified) is not fresh, or None when it is; remembers it."""
        when, nonce = message.get("time"), message.get("nonce")
        if not isinstance(when, int | float) or isinstance(when, bool) or not isinstance(nonce, str) \
                or not 2 * NONCE_BYTES <= len(nonce) <= 128:
            return "no time or nonce (a node older than this one, or a forged message)"
        if abs(now - when) > self.window:
            return (f"sent {now - when:+.0f}s from now, outside max_clock_skew ({self.window:g}s): "
                    "a replay, or clocks out of step (use NTP)")
        if when < self.floor:
            return "sent before this node started: a replay"
        for old in [n for n, t in self.seen.items() if t < now - 2 * self.window]:
            del self.seen[old]
        if nonce in self.seen:
            return "already received: a replay"
        self.seen[nonce] = when
        return None
