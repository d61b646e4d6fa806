"""Which pool serves a request: by Host and path prefix (ProxyPass /app balancer://app). Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class RouteRule:
    host: bytes | None  # lower-case, no port; None = any host
    prefix: bytes  # starts with "/"
    pool: str

    def describe(self) -> str:
        """How access logs and metrics name the route: `host/prefix` or `/prefix`."""
        return (self.host or b"").decode("latin-1") + self.prefix.decode("latin-1")


def host_without_port(host: bytes) -> bytes:
    """`Example.COM:8080` -> `example.com`; `[::1]:80` -> `[::1]`."""
    host = host.strip().lower()
    if host.startswith(b"["):
        end = host.find(b"]")
        return host[:end + 1] if end > 0 else host
    return host.rsplit(b":", 1)[0] if host.count(b":") == 1 else host


def prefix_matches(prefix: bytes, path: bytes) -> bool:
    """Prefixes match on segment boundaries: `/app` matches `/app`, `/app/x`, `/app?q`, not `/apple`."""
    if not path.startswith(prefix):
        return False
    if prefix.endswith(b"/") or len(path) == len(prefix):
        return True
    return path[len(prefix)] in b"/?;#"


class Router:
    """Most specific rule first: a rule naming the host before a host-less one, then the
    longest prefix; the default pool when nothing matches."""

    def __init__(self, rules: Iterable[RouteRule], default: str):
        self.default = default
        self.rules = sorted(rules, key=lambda r: (r.host is None, -len(r.prefix)))

    def pool_for(self, host: bytes | None, target: bytes) -> str:
        rule = self.rule_for(host, target)
        return self.default if rule is None else rule.pool

    def rule_for(self, host: bytes | None, target: bytes) -> RouteRule | None:
        """The rule that routes the request; None when the default pool takes it."""
        if not self.rules:
            return None
        bare = host_without_port(host) if host else None
        for rule in self.rules:
            if rule.host is not None and rule.host != bare:
                continue
            if prefix_matches(rule.prefix, target):
                return rule
        return None
