"""Transfer codings (RFC 9112 §6, §7). Pure.

Chunked framing is hop-by-hop: this proxy takes a message's chunks off and frames the body
again for the next hop. Any other transfer coding (`gzip`, `deflate`...) listed before the
final `chunked` belongs to the data and is kept: forwarded in `Transfer-Encoding` to a server
or an HTTP/1.1 client (§6.1). An HTTP/1.0 client cannot be sent transfer codings (§6.1: not
unless the request says HTTP/1.1), so for it they are decoded here (`gzip` and `deflate`, the
ones zlib reads; anything else cannot reach it: 502)."""

from __future__ import annotations

import zlib

# one server read may not inflate into more than this for an HTTP/1.0 client (a hostile
# server's "gzip bomb" would otherwise grow memory ~1000 times its read)
MAX_INFLATE_PER_READ = 32 * 1024 * 1024


def split(codings: bytes) -> tuple[list[bytes], bool]:
    """(the codings before a final chunked, lower-cased; whether chunked is last)."""
    names = [c.strip().lower() for c in codings.split(b",") if c.strip()]
    chunked = bool(names) and names[-1] == b"chunked"
    if chunked:
        names.pop()
    return [n for n in names if n != b"identity"], chunked


class Decoder:
    """Undoes a list of codings, last applied first, as data streams through."""

    def __init__(self, stages: list[zlib._Decompress]):
        self.stages = stages

    def feed(self, data: bytes) -> bytes:
        """Raises ValueError on corrupt data or past MAX_INFLATE_PER_READ."""
        try:
            for stage in self.stages:
                data = stage.decompress(data, MAX_INFLATE_PER_READ + 1)
                if stage.unconsumed_tail:
                    raise ValueError("transfer coding inflates too much")
        except zlib.error as err:
            raise ValueError(f"corrupt transfer coding: {err}") from None
        return data

    def flush(self) -> bytes:
        data = b""
        try:
            for stage in self.stages:
                data = stage.decompress(data, MAX_INFLATE_PER_READ + 1) + stage.flush()
        except zlib.error as err:
            raise ValueError(f"corrupt transfer coding: {err}") from None
        return data


def decoder_for(codings: list[bytes]) -> Decoder | None:
    """A decoder for codings applied in the listed order; None if one is not known."""
    stages = []
    for name in reversed(codings):  # the last coding applied is undone first
        if name in (b"gzip", b"x-gzip"):
            stages.append(zlib.decompressobj(16 + zlib.MAX_WBITS))
        elif name == b"deflate":  # RFC 9110 §8.4.1.2: the zlib format
            stages.append(zlib.decompressobj())
        else:
            return None
    return Decoder(stages)
