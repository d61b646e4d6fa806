"""Request framing rules llhttp does not follow, done before and beside it. Pure.

llhttp (through httptools) parses request heads strictly, and stays the judge of them. Two
valid forms it refuses are handled here (issue 7 item 12):
- **methods are tokens** (RFC 9110 §9.1, §5.6.2): llhttp knows a fixed list. A method it does
  not know (`FOO`, `BREW`, lowercase `get`) is shown to it as `GET`, and the request keeps
  and forwards its own method. Methods are case-sensitive, so `get` is not GET (nor
  idempotent).
- **chunk extensions may have whitespace around `;` and `=`** (RFC 9112 §7.1.1, BWS): llhttp
  refuses it, so chunked request bodies are decoded here, as strictly otherwise.
"""

from __future__ import annotations

import re

TOKEN_CHARS = rb"!#$%&'*+\-.^_`|~0-9A-Za-z"
_TOKEN = re.compile(rb"[" + TOKEN_CHARS + rb"]+")
MAX_METHOD = 64  # longer: 501 (no limit in the RFC; a bound on what we hold)

# What llhttp parses as a method (checked by tests/unit/http/test_framing.py)
LLHTTP_METHODS = frozenset(
    b"DELETE GET HEAD POST PUT CONNECT OPTIONS TRACE COPY LOCK MKCOL MOVE PROPFIND PROPPATCH "
    b"SEARCH UNLOCK BIND REBIND UNBIND ACL REPORT MKACTIVITY CHECKOUT MERGE M-SEARCH NOTIFY "
    b"SUBSCRIBE UNSUBSCRIBE PATCH PURGE MKCALENDAR LINK UNLINK SOURCE QUERY PRI".split())
STAND_IN = b"GET"  # what llhttp is shown for any other method: no special framing
COMMON_STARTS = (b"GET ", b"POST ", b"HEAD ", b"PUT ", b"DELETE ", b"OPTIONS ", b"PATCH ")  # llhttp's own


class FramingError(ValueError):
    """Input that is not HTTP/1.1 (answered 400, or `status`)."""

    def __init__(self, reason: str, status: int = 400):
        super().__init__(reason)
        self.status = status


def split_method(buf: bytes, start: int) -> int:
    """The end of the method starting at `start`: the index of the first byte that is not a
    token character (llhttp judges what it is), or -1 when the buffer ends inside the method.
    Raises FramingError (501) past MAX_METHOD."""
    match = _TOKEN.match(buf, start)
    end = match.end() if match is not None else start
    if end - start > MAX_METHOD:
        raise FramingError("method too long", 501)
    return end if end < len(buf) else -1


# RFC 9112 §7.1: chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
#   chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
#   chunk-ext-val = token / quoted-string   (BWS = OWS = *( SP / HTAB ))
_QUOTED = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
_TOK = rb"[" + TOKEN_CHARS + rb"]+"
_CHUNK_LINE = re.compile(
    rb"([0-9A-Fa-f]{1,15})(?:[ \t]*;[ \t]*" + _TOK + rb"(?:[ \t]*=[ \t]*(?:" + _TOK + rb"|" + _QUOTED + rb"))?)*")
_FIELD_LINE = re.compile(rb"[" + TOKEN_CHARS + rb"]+:[\t -~\x80-\xff]*")
MAX_CHUNK_LINE = 4096

SIZE, DATA, DATA_END, TRAILER, DONE = range(5)


class ChunkedBody:
    """Decodes a chunked body as it arrives (RFC 9112 §7.1). Strict: a size of hex digits
    only (no sign, no 0x, at most 15 digits), CRLF line ends only, data exactly as long as its
    size, trailer fields well-formed (they are read and dropped: bodies are re-framed)."""

    __slots__ = ("state", "remaining", "line", "trailer_bytes", "max_trailer")

    def __init__(self, max_trailer: int = 65536):
        self.state = SIZE
        self.remaining = 0
        self.line = b""  # an incomplete size or trailer line
        self.trailer_bytes = 0
        self.max_trailer = max_trailer

    def feed(self, buf: bytes, pos: int, out: list[bytes]) -> int:
        """Decode from buf[pos:]; append data to `out`; return where decoding stopped (the
        end of the body when `state` is DONE, else len(buf))."""
        end = len(buf)
        while pos < end:
            state = self.state
            if state == DATA:
                take = min(self.remaining, end - pos)
                out.append(buf[pos:pos + take])
                pos += take
                self.remaining -= take
                if not self.remaining:
                    self.state = DATA_END
            elif state == DATA_END:  # exactly CRLF after the data
                need = b"\r\n"[len(self.line):]
                got = buf[pos:pos + len(need)]
                if not need.startswith(got):
                    raise FramingError("chunk data longer than its size")
                self.line += got
                pos += len(got)
                if len(self.line) == 2:
                    self.line = b""
                    self.state = SIZE
            elif state == DONE:
                return pos
            else:
                nl = buf.find(b"\n", pos)
                piece = buf[pos:] if nl < 0 else buf[pos:nl + 1]
                self.line += piece
                pos += len(piece)
                limit = MAX_CHUNK_LINE if state == SIZE else self.max_trailer
                if len(self.line) > limit:
                    raise FramingError("chunk size line too long" if state == SIZE else "trailer section too large")
                if nl < 0:
                    return pos
                line, self.line = self.line, b""
                if not line.endswith(b"\r\n") or b"\r" in line[:-2]:
                    raise FramingError("bare LF or CR in a chunked body")  # RFC 9112 §2.2
                line = line[:-2]
                if state == SIZE:
                    self._size(line)
                else:
                    self._trailer(line)
        return pos

    def _size(self, line: bytes) -> None:
        match = _CHUNK_LINE.fullmatch(line)
        if match is None:
            raise FramingError("invalid chunk size or extension")
        self.remaining = int(match.group(1), 16)
        self.state = DATA if self.remaining else TRAILER

    def _trailer(self, line: bytes) -> None:
        if not line:
            self.state = DONE
            return
        self.trailer_bytes += len(line) + 2
        if self.trailer_bytes > self.max_trailer:
            raise FramingError("trailer section too large", 431)
        if _FIELD_LINE.fullmatch(line) is None:  # no obs-fold, no empty name, no NUL (RFC 9112 §5)
            raise FramingError("invalid trailer field")
