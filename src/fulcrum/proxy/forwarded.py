"""X-Forwarded-For / X-Forwarded-Proto injection into a raw client->server byte stream
(pen -H). Pure: bytes in, bytes out; no sockets, no clock.

The TCP relay does not parse HTTP, so to add headers to *every* request on a keep-alive or
pipelined connection this module frames the stream itself (RFC 9112):

- the request head runs up to the first CRLFCRLF (§2.1), bounded by MAX_HEAD bytes;
- the body is delimited by Transfer-Encoding: chunked (§7.1, chunk-size lines, chunk data,
  trailer section) or by Content-Length (§6.2); a request with neither has no body (§6.3 rule 6);
- after a CONNECT or an Upgrade request the bytes are no longer HTTP: pass-through.

Header edits (on bytes, the rest of the head is kept byte for byte):
- X-Forwarded-For: the client's address is *appended to the list* already present (", ip" added
  to the last X-Forwarded-For line; RFC 9110 §5.3 makes that equivalent to another list
  element), or a new line is added. Servers that read only the first line still see the chain.
- X-Forwarded-Proto: every line the client sent is removed and ours is added; a client must
  not be able to claim https on a plain connection.

Anything this framer cannot follow with certainty -- a first line that is not an HTTP/1.x
request line, a head longer than MAX_HEAD, bare LF line endings, obs-fold, a malformed
Content-Length or chunk size, Transfer-Encoding whose final coding is not chunked -- switches
the connection to plain pass-through for the rest of its life: we never guess at framing,
because a wrong guess would insert bytes into a body. The consequence (documented for users):
on such a connection later requests carry no added headers, so a server must not trust
X-Forwarded-For from a tcp service for security decisions; `mode = "http"` rejects such input.
"""

from __future__ import annotations

import re

MAX_HEAD = 64 * 1024
MAX_CHUNK_LINE = 4096  # chunk-size line incl. extensions; ample for real clients
MAX_TRAILERS = 64 * 1024

# RFC 9112 §3: request-line = method SP request-target SP HTTP-version
_REQUEST_LINE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+ [^ \x00-\x1f\x7f]+ HTTP/1\.[01]")
_METHOD_PREFIX = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]*")
# RFC 9110 §5.1/§5.5: field-name = token; field-value without CR/LF/NUL
_FIELD_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*")
_TCHAR = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CHUNK_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]{1,15})[ \t]*(?:;.*)?")  # §7.1.1, ext tolerated

# states
_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILERS, _PASS = range(7)


class ForwardedInjector:
    """Feed it client->server bytes in any splits; it returns the bytes to send on."""

    __slots__ = ("client_ip", "proto", "state", "buf", "remaining", "requests", "trailer_bytes")

    def __init__(self, client_ip: str, proto: str, enabled: bool = True):
        self.client_ip = client_ip.encode("ascii", "replace")
        self.proto = proto.encode("ascii", "replace")
        self.state = _HEAD if enabled else _PASS
        self.buf = bytearray()  # a partial head, chunk-size line, CRLF or trailer section
        self.remaining = 0  # body or chunk bytes still to pass unchanged
        self.requests = 0  # heads rewritten so far (for tests and stats)
        self.trailer_bytes = 0

    @property
    def passing_through(self) -> bool:
        return self.state == _PASS

    def feed(self, data: bytes) -> bytes:
        if self.state == _PASS:
            return data
        out: list[bytes] = []
        pos, end = 0, len(data)
        while pos < end:
            state = self.state
            if state == _PASS:
                out.append(data[pos:])
                break
            if state == _LENGTH or state == _CHUNK_DATA:
                take = min(self.remaining, end - pos)
                out.append(data[pos:pos + take])
                pos += take
                self.remaining -= take
                if self.remaining == 0:
                    self.state = _HEAD if state == _LENGTH else _CHUNK_CRLF
                continue
            pos = self._feed_line_state(data, pos, out)
        return b"".join(out)

    # -- states that accumulate into self.buf ----------------------------------------

    def _feed_line_state(self, data: bytes, pos: int, out: list[bytes]) -> int:
        """Accumulate into buf until the state's terminator; return the new position."""
        state = self.state
        if state == _HEAD and not self.buf and not data.startswith(b"\r\n", pos):
            # the common case: a whole head in this read, handled without copying into buf
            end = data.find(b"\r\n\r\n", pos, pos + MAX_HEAD)
            if end >= 0:
                self._on_head(data[pos:end + 4], out)
                return end + 4
        if state == _HEAD:
            terminator, limit = b"\r\n\r\n", MAX_HEAD
        elif state == _CHUNK_CRLF:
            terminator, limit = b"\r\n", 2
        else:
            terminator, limit = b"\r\n", MAX_CHUNK_LINE
        buf = self.buf
        before = len(buf)  # bytes in buf that did not come from this data
        start = max(0, before - len(terminator) + 1)
        buf += data[pos:]
        if state == _HEAD:
            # RFC 9112 §2.2: empty lines before a request-line are ignored; pass them on as is
            lead = 0
            while buf.startswith(b"\r\n", lead):
                lead += 2
            if lead:
                out.append(bytes(buf[:lead]))
                del buf[:lead]
                before -= lead
                start = 0
        found = buf.find(terminator, start)
        if found < 0 or found + len(terminator) > limit:
            if len(buf) > limit or (state == _HEAD and not self._head_plausible()):
                self._give_up(out)
            return len(data)
        used = found + len(terminator)
        consumed_from_data = used - before
        unit = bytes(buf[:used])
        del buf[:]
        if state == _HEAD:
            self._on_head(unit, out)
        elif state == _TRAILERS:
            self._on_trailer_line(unit, out)
        elif state == _CHUNK_CRLF:
            out.append(unit)
            self.state = _CHUNK_SIZE if unit == b"\r\n" else _PASS
        else:
            self._on_chunk_size(unit, out)
        return pos + consumed_from_data

    def _head_plausible(self) -> bool:
        """Decide early (before a CRLFCRLF) that the head cannot be an HTTP/1.x request."""
        buf = self.buf  # no copy: this runs on every partial feed of a head
        if buf == b"\r":
            return True  # maybe the first half of an empty line before the request-line
        nl = buf.find(b"\n")
        if nl < 0:
            # no complete line yet: the method (up to the first SP) must be a token
            sp = buf.find(b" ")
            return _METHOD_PREFIX.fullmatch(buf, 0, sp if sp >= 0 else len(buf)) is not None
        if buf[nl - 1] != 0x0D:
            return False  # bare LF: not strict HTTP/1.1 framing
        return _REQUEST_LINE.fullmatch(buf, 0, nl - 1) is not None

    def _give_up(self, out: list[bytes]) -> None:
        out.append(bytes(self.buf))
        del self.buf[:]
        self.state = _PASS

    # -- a complete head -------------------------------------------------------------

    def _on_head(self, head: bytes, out: list[bytes]) -> None:
        framing = self._inspect(head)
        if framing is None:
            self.buf += head
            self._give_up(out)
            return
        next_state, count, fields_at, xff_at, proto_seen = framing
        ours = b"X-Forwarded-Proto: " + self.proto + b"\r\n"
        if xff_at < 0 and not proto_seen:  # usual: our two lines go before the final CRLF
            out.append(head[:-2] + b"X-Forwarded-For: " + self.client_ip + b"\r\n" + ours + b"\r\n")
        else:
            out.append(self._edited(head, fields_at, xff_at) + ours + b"\r\n")
        self.requests += 1
        self.state, self.remaining = next_state, count

    def _edited(self, head: bytes, fields_at: int, xff_at: int) -> bytes:
        """The head without its final CRLF: the client's X-Forwarded-Proto lines dropped, our
        address appended to the last X-Forwarded-For line (or a new line)."""
        lines = [head[:fields_at]]
        for i, line in enumerate(head[fields_at:-4].split(b"\r\n")):
            if line.partition(b":")[0].lower() == b"x-forwarded-proto":
                continue
            if i == xff_at:
                line = line.rstrip(b" \t") + b", " + self.client_ip
            lines.append(line + b"\r\n")
        if xff_at < 0:
            lines.append(b"X-Forwarded-For: " + self.client_ip + b"\r\n")
        return b"".join(lines)

    def _inspect(self, head: bytes) -> tuple[int, int, int, int, bool] | None:
        """Check the head is strict HTTP/1.x we can frame; return (next state, byte count,
        offset of the first field line, index of the last X-Forwarded-For line or -1,
        whether X-Forwarded-Proto was sent), or None to give up."""
        crlf = head.count(b"\r\n")
        if head.count(b"\n") != crlf or head.count(b"\r") != crlf or b"\x00" in head:
            return None  # bare LF or CR, NUL (RFC 9112 §2.2, RFC 9110 §5.5)
        if b"\r\n " in head or b"\r\n\t" in head:
            return None  # obs-fold (RFC 9112 §5.2)
        first_end = head.find(b"\r\n")
        if _REQUEST_LINE.fullmatch(head, 0, first_end) is None:
            return None
        lengths: set[bytes] = set()
        codings: list[bytes] = []
        upgrade = head.startswith(b"CONNECT ")
        xff_at = -1
        proto_seen = False
        fields = head[first_end + 2:-4]
        for i, line in enumerate(fields.split(b"\r\n") if fields else ()):
            name, colon, value = line.partition(b":")
            if not colon or not name or name.translate(None, _TCHAR):
                return None  # no colon, empty name, space before colon (RFC 9112 §5.1)
            name = name.lower()
            if name == b"x-forwarded-proto":
                proto_seen = True
            elif name == b"x-forwarded-for":
                xff_at = i
            elif name == b"content-length":
                lengths.update(v.strip() for v in value.split(b","))
            elif name == b"transfer-encoding":
                codings += [c.strip().lower() for c in value.split(b",") if c.strip()]
            elif name == b"upgrade":
                upgrade = True
        framing = self._framing(upgrade, codings, lengths)
        if framing is None:
            return None
        return framing[0], framing[1], first_end + 2, xff_at, proto_seen

    @staticmethod
    def _framing(upgrade: bool, codings: list[bytes], lengths: set[bytes]) -> tuple[int, int] | None:
        if upgrade:
            return _PASS, 0
        if codings:
            # RFC 9112 §6.1: chunked must be final; §6.3: TE overrides Content-Length.
            return (_CHUNK_SIZE, 0) if codings[-1] == b"chunked" and not lengths else None
        if lengths:
            if len(lengths) != 1:
                return None
            (value,) = lengths
            if not value.isdigit() or len(value) > 18:
                return None
            n = int(value)
            return (_LENGTH, n) if n else (_HEAD, 0)
        return _HEAD, 0

    def _on_chunk_size(self, line: bytes, out: list[bytes]) -> None:
        m = _CHUNK_SIZE_LINE.fullmatch(line[:-2])
        if m is None or b"\r" in line[:-2] or b"\n" in line[:-2]:
            self.buf += line
            self._give_up(out)
            return
        out.append(line)
        size = int(m.group(1), 16)
        if size:
            self.state, self.remaining = _CHUNK_DATA, size
        else:
            self.state = _TRAILERS  # last-chunk: trailer lines up to an empty line (§7.1.2)

    def _on_trailer_line(self, line: bytes, out: list[bytes]) -> None:
        if line == b"\r\n":
            out.append(line)
            self.state = _HEAD
            self.trailer_bytes = 0
            return
        self.trailer_bytes += len(line)
        if _FIELD_LINE.fullmatch(line[:-2]) is None or self.trailer_bytes > MAX_TRAILERS:
            self.buf += line
            self._give_up(out)
            return
        out.append(line)
