"""Header edits of the HTTP proxy, on bytes. Pure.

Names arrive as the client or server spelled them; comparisons use lower-cased copies."""

from __future__ import annotations

from collections.abc import Iterable

Headers = list[tuple[bytes, bytes]]

# RFC 9110 §7.6.1: hop-by-hop fields (Connection, Proxy-Connection, Keep-Alive, TE,
# Transfer-Encoding, Upgrade). Each hop frames the body itself (RFC 9112 §6.1), and this proxy
# re-encodes chunked bodies without their trailer section, so a Trailer declaration goes too.
HOP_BY_HOP = frozenset({
    b"connection", b"proxy-connection", b"keep-alive", b"te", b"transfer-encoding",
    b"upgrade", b"trailer",
})
FORWARDED_NAMES = frozenset({b"x-forwarded-proto", b"x-forwarded-host"})


def connection_options(headers: Headers) -> set[bytes]:
    """The option names listed in Connection fields (RFC 9110 §7.6.1), lower-cased."""
    options: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            options.update(o.strip().lower() for o in value.split(b",") if o.strip())
    return options


def strip_hop_by_hop(headers: Headers, keep_upgrade: bool = False) -> Headers:
    """Drop hop-by-hop fields and every field the Connection header names."""
    named = connection_options(headers)
    drop = (HOP_BY_HOP | named) - ({b"upgrade"} if keep_upgrade else set())
    return [(n, v) for n, v in headers if n.lower() not in drop]


def get(headers: Headers, name: bytes) -> bytes | None:
    """The first value of a field (`name` lower-case)."""
    for n, v in headers:
        if n.lower() == name:
            return v
    return None


def add_forwarded(headers: Headers, client_ip: str, proto: str, host: bytes | None,
                  x_forwarded: bool, rfc7239: bool) -> Headers:
    """X-Forwarded-For appended to the client's list; -Proto and -Host replaced (a client
    must not choose them); RFC 7239 Forwarded appended as a new element."""
    ip = client_ip.encode()
    out: Headers = []
    xff_at = -1
    for name, value in headers:
        lower = name.lower()
        if x_forwarded and lower in FORWARDED_NAMES:
            continue
        if x_forwarded and lower == b"x-forwarded-for":
            if xff_at >= 0:  # fold several lines into one list (RFC 9110 §5.3)
                out[xff_at] = (out[xff_at][0], out[xff_at][1] + b", " + value)
                continue
            xff_at = len(out)
        out.append((name, value))
    if x_forwarded:
        if xff_at >= 0:
            out[xff_at] = (b"X-Forwarded-For", out[xff_at][1] + b", " + ip)
        else:
            out.append((b"X-Forwarded-For", ip))
        out.append((b"X-Forwarded-Proto", proto.encode()))
        if host is not None:
            out.append((b"X-Forwarded-Host", host))
    if rfc7239:
        node = b'"[' + ip + b']"' if b":" in ip else ip  # RFC 7239 §6: IPv6 quoted, bracketed
        element = b"for=" + node + b";proto=" + proto.encode()
        if host is not None:
            element += b';host="' + host.replace(b'"', b"") + b'"'
        for i, (name, value) in enumerate(out):
            if name.lower() == b"forwarded":
                out[i] = (name, value + b", " + element)
                break
        else:
            out.append((b"Forwarded", element))
    return out


def replace(headers: Headers, name: bytes, value: bytes) -> Headers:
    """Set field `name` to one line with `value`, where its first line was (else first)."""
    lower = name.lower()
    out: Headers = []
    placed = False
    for n, v in headers:
        if n.lower() == lower:
            if not placed:
                out.append((name, value))
                placed = True
            continue
        out.append((n, v))
    if not placed:
        out.insert(0, (name, value))
    return out


def request_head(method: bytes, target: bytes, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Serialize a request head; we always speak HTTP/1.1 to servers (RFC 9110 §2.5)."""
    parts = [method, b" ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def response_head(status: int, reason: bytes, headers: Iterable[tuple[bytes, bytes]],
                  version: bytes = b"1.1") -> bytes:
    parts = [b"HTTP/", version, b" %d " % status, reason, b"\r\n"]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


REWRITTEN_RESPONSE_FIELDS = frozenset({b"location", b"content-location", b"uri"})


def rewrite_locations(headers: Headers, server_origins: Iterable[bytes], public_origin: bytes) -> Headers:
    """ProxyPassReverse: a URL pointing at the server's own address is made to point at the
    address the client used. `server_origins` are lower-case `http://host:port` prefixes."""
    origins = tuple(server_origins)
    out: Headers = []
    for name, value in headers:
        if name.lower() in REWRITTEN_RESPONSE_FIELDS:
            lowered = value.lower()
            for origin in origins:
                if lowered.startswith(origin) and (len(value) == len(origin) or value[len(origin)] in b"/?#"):
                    value = public_origin + value[len(origin):]
                    break
        out.append((name, value))
    return out
