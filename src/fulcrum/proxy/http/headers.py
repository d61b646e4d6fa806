"""Header edits of the HTTP proxy, on bytes. Pure.

Names arrive as the client or server spelled them; comparisons use lower-cased copies."""

from __future__ import annotations

import re
from collections.abc import Iterable

Headers = list[tuple[bytes, bytes]]

# RFC 9110 §7.6.1: hop-by-hop fields (Connection, Proxy-Connection, Keep-Alive, TE,
# Transfer-Encoding, Upgrade). Each hop frames the body itself (RFC 9112 §6.1), and this proxy
# re-encodes chunked bodies without their trailer section, so a Trailer declaration goes too.
HOP_BY_HOP = frozenset({
    b"connection", b"proxy-connection", b"keep-alive", b"te", b"transfer-encoding",
    b"upgrade", b"trailer",
})
FORWARDED_NAMES = frozenset({b"x-forwarded-proto", b"x-forwarded-host"})  # a client must not set them


def response_head(status: int, reason: bytes, headers: Iterable[tuple[bytes, bytes]],
                  version: bytes = b"1.1") -> bytes:
    """A response head with fields as given (the 101 that starts a tunnel keeps them all)."""
    parts = [b"HTTP/", version, b" %d " % status, reason, b"\r\n"]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


REWRITTEN_RESPONSE_FIELDS = frozenset({b"location", b"content-location", b"uri"})


def rewrite_url(value: bytes, server_origins: Iterable[bytes], public_origin: bytes) -> bytes:
    """ProxyPassReverse: a URL pointing at the server's own address is made to point at the
    address the client used. `server_origins` are lower-case `http://host:port` prefixes."""
    lowered = value.lower()
    for origin in server_origins:
        if lowered.startswith(origin) and (len(value) == len(origin) or value[len(origin)] in b"/?#"):
            return public_origin + value[len(origin):]
    return value


# -- Host and the request target (RFC 9112 §3.2, §3.2.2) ---------------------------------------

# Host = uri-host [ ":" port ] (RFC 9112 §3.2, RFC 3986 §3.2.2-3): an IP literal in brackets, or
# a reg-name of unreserved characters, sub-delims and %XX. No userinfo (`a@b`), no whitespace
# (`a b`), no list (`a, b`): a value a server or a cache could read differently from us.
_HOST = re.compile(
    rb"(?:\[[0-9A-Fa-f:.]+\]|\[v[0-9A-Fa-f]+\.[A-Za-z0-9._~!$&'()*+,;=:-]+\]"
    rb"|(?:[A-Za-z0-9._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2})*)(?::[0-9]*)?")


def valid_host(value: bytes) -> bool:
    return _HOST.fullmatch(value) is not None


class TargetError(ValueError):
    """A request target this proxy cannot route (answered 400)."""


def absolute_form(target: bytes) -> tuple[bytes, bytes] | None:
    """(authority, origin-form target) of an absolute-form request target (RFC 9112 §3.2.2);
    None for any other form. The authority replaces Host, and the server is sent the
    origin-form, as it would be from a client that addressed it directly."""
    scheme_end = target.find(b"://")
    if scheme_end <= 0 or target[:1] == b"/":
        return None
    scheme = target[:scheme_end].lower()
    if scheme not in (b"http", b"https"):
        raise TargetError(f"request target scheme {scheme.decode('latin-1')!r} is not http(s)")
    rest = target[scheme_end + 3:]
    cut = len(rest)
    for stop in (b"/", b"?", b"#"):
        at = rest.find(stop)
        if 0 <= at < cut:
            cut = at
    authority, path = rest[:cut], rest[cut:]
    # RFC 9110 §4.2.1: an http(s) URI with an empty host is invalid; §4.2.4: no userinfo
    if not authority or authority.startswith(b":") or not valid_host(authority):
        raise TargetError("request target authority is invalid")
    if not path.startswith(b"/"):
        path = b"/" + path
    return authority, path


# -- the hot path: one pass over the fields, straight to bytes ---------------------------------


def named_options(value: bytes) -> set[bytes]:
    """Options of one Connection field value, lower-cased."""
    return {o.strip().lower() for o in value.split(b",") if o.strip()}


class RequestEdit:
    """The request head sent to a server, built in one pass over the client's fields:
    hop-by-hop fields and those the client's Connection field names are dropped (RFC 9110
    §7.6.1); X-Forwarded-For is appended to (several lines folded into one list, RFC 9110
    §5.3), -Proto and -Host replaced, Forwarded (RFC 7239) extended; Host kept or replaced."""

    def __init__(self, proto: str, x_forwarded: bool, rfc7239: bool, preserve_host: bool):
        self.proto = proto.encode()
        self.x_forwarded = x_forwarded
        self.rfc7239 = rfc7239
        self.preserve_host = preserve_host
        self.drop = HOP_BY_HOP | (FORWARDED_NAMES if x_forwarded else frozenset())
        self.proto_line = b"X-Forwarded-Proto: " + self.proto + b"\r\n"

    def head(self, method: bytes, target: bytes, headers: Headers, client_ip: bytes,
             host: bytes | None, server_hostport: bytes, options: set[bytes] | None,
             upgrade: bool, chunked: bool, codings: bytes | None = None) -> bytes:
        """`codings`: the client's Transfer-Encoding list when it names more than chunked
        (kept, RFC 9112 §6.1: only the chunks are re-framed); None = plain chunked."""
        drop = self.drop
        if options:
            drop = drop | options
        if upgrade:
            drop = drop - {b"upgrade"}
        replace_host = not self.preserve_host or host is None
        parts = [method, b" ", target, b" HTTP/1.1\r\n"]
        if replace_host:
            parts += (b"Host: ", server_hostport, b"\r\n")
        xff: list[bytes] = []
        forwarded: list[bytes] = []
        for name, value in headers:
            lower = name.lower()
            if lower in drop:
                continue
            if lower == b"x-forwarded-for" and self.x_forwarded:
                xff.append(value)
            elif lower == b"forwarded" and self.rfc7239:
                forwarded.append(value)
            elif lower == b"host" and replace_host:
                continue
            else:
                parts += (name, b": ", value, b"\r\n")
        if self.x_forwarded:
            xff.append(client_ip)
            parts += (b"X-Forwarded-For: ", b", ".join(xff), b"\r\n", self.proto_line)
            if host is not None:
                parts += (b"X-Forwarded-Host: ", host, b"\r\n")
        if self.rfc7239:
            node = b'"[' + client_ip + b']"' if b":" in client_ip else client_ip  # RFC 7239 §6
            element = b"for=" + node + b";proto=" + self.proto
            if host is not None:
                element += b';host="' + host.replace(b'"', b"") + b'"'
            forwarded.append(element)
            parts += (b"Forwarded: ", b", ".join(forwarded), b"\r\n")
        if chunked:
            parts += (b"Transfer-Encoding: ", codings or b"chunked", b"\r\n")
        if upgrade:
            parts.append(b"Connection: upgrade\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)


COMMON_CONNECTION = frozenset({b"keep-alive", b"close", b"Keep-Alive", b"Close", b"upgrade", b"Upgrade"})

# The response fields that are not simply passed on: hop-by-hop, Content-Length (framing)
# and the URLs that may be rewritten; a line whose name starts with none of their first
# letters is passed on as it is without a closer look.
SPECIAL_RESPONSE_FIELDS = HOP_BY_HOP | REWRITTEN_RESPONSE_FIELDS | {b"content-length"}
_SPECIAL_FIRST = bytes(sorted({name[0] for name in SPECIAL_RESPONSE_FIELDS}))  # lower case
MAX_RESPONSE_FIELDS = 500


class ResponseHeadError(ValueError):
    """A response head this proxy does not pass on (the server failed: 502)."""


def cut_response_head(buf: bytes, start: int) -> tuple[bytes, list[bytes], int]:
    """The response head that begins at `start` in `buf`, which llhttp has just read to its
    end: (its reason phrase, its field lines, the offset just after the head). llhttp has
    refused a bare LF or CR, obs-fold, NUL, whitespace before a colon and any other malformed
    line before it calls this, so every line ends with CRLF and the first empty line ends the
    head; it skips empty lines before a status line (RFC 9112 §2.2), as this does."""
    while buf[start] in (13, 10):
        start += 1
    cut = buf.find(b"\r\n\r\n", start)
    if cut < 0:
        raise ResponseHeadError("response head without its end")  # llhttp would not have ended it
    lines = buf[start:cut].split(b"\r\n")
    if len(lines) > MAX_RESPONSE_FIELDS + 1:
        raise ResponseHeadError("too many response header fields")
    # "HTTP/1.1 200 OK" (or RTSP/, ICE/: llhttp takes them too): after the version, one
    # space, 3 digits and one space, as llhttp checked; the bytes its on_status gave
    status_line = lines[0]
    reason = status_line[13:] if status_line[4] == 47 else status_line[12:]
    del lines[0]
    return reason or b"-", lines, cut + 4


def field_value(line: bytes) -> bytes:
    """The value of one field line, leading whitespace off (as llhttp gives it)."""
    return line.partition(b":")[2].lstrip(b" \t")


def field_pairs(lines: list[bytes]) -> Headers:
    """(name, value) of the field lines of `cut_response_head`."""
    return [(line.partition(b":")[0], field_value(line)) for line in lines]


def field_lines(lines: list[bytes], rewrite: bool) -> tuple[list[bytes], bool, bytes | None, list[int]]:
    """The server's field lines for the client, in one pass: hop-by-hop dropped, all others
    passed on as the server wrote them. `lines` as `cut_response_head` gives them. Returns
    (the lines without CRLF, after an empty slot for the status line; has Content-Length;
    its Transfer-Encoding list or None; where in the lines are Location, Content-Location
    and URI, when `rewrite`: `rewrite_lines` rewrites them, the server's origins looked up
    only when a response has one)."""
    options: set[bytes] | None = None
    parts: list[bytes] = [b""]
    has_length = False
    codings: bytes | None = None
    urls: list[int] = []
    first = _SPECIAL_FIRST
    for line in lines:
        if line[0] | 0x20 not in first:  # llhttp: a name is one or more token characters
            parts.append(line)
            continue
        lower = line.partition(b":")[0].lower()
        if lower not in SPECIAL_RESPONSE_FIELDS:
            parts.append(line)
        elif lower in HOP_BY_HOP:
            if lower == b"connection":
                value = field_value(line)
                if value not in COMMON_CONNECTION:
                    options = (options or set()) | named_options(value)
            elif lower == b"transfer-encoding":
                value = field_value(line)
                codings = value if codings is None else codings + b", " + value
        else:
            if lower == b"content-length":
                has_length = True
            elif rewrite:
                urls.append(len(parts))
            parts.append(line)
    if options and not options <= HOP_BY_HOP | {b"close"}:
        # rare: the server's Connection field names other fields; they go too (RFC 9110 §7.6.1)
        drop = options | {b"connection"}
        return field_lines([line for line in lines if line.partition(b":")[0].lower() not in drop], rewrite)
    return parts, has_length, codings, urls


def rewrite_lines(parts: list[bytes], urls: list[int], origins: tuple[bytes, ...], public_origin: bytes) -> None:
    """Location, Content-Location and URI lines of `field_lines` rewritten in place
    (ProxyPassReverse: `rewrite_url`)."""
    for i in urls:
        line = parts[i]
        name, _, value = line.partition(b":")
        value = value.lstrip(b" \t")
        rewritten = rewrite_url(value, origins, public_origin)
        if rewritten is not value:
            parts[i] = name + b": " + rewritten

