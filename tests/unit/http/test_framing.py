"""Framing rules beside llhttp (issue 7 item 12): token methods, chunk extensions with BWS."""

from __future__ import annotations

import httptools
import pytest

from fulcrum.proxy.http.framing import (
    DONE,
    LLHTTP_METHODS,
    ChunkedBody,
    FramingError,
    split_method,
)


def test_llhttp_methods_are_what_llhttp_parses() -> None:
    """The stand-in is needed exactly for methods llhttp refuses."""
    class Sink:
        pass

    for method in [*LLHTTP_METHODS, b"FOO", b"get", b"BREW"]:
        parser = httptools.HttpRequestParser(Sink())
        try:
            parser.feed_data(method + b" * HTTP/1.1\r\nHost: t\r\n\r\n")
            known = True
        except httptools.HttpParserInvalidMethodError:
            known = False
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):  # something else than the method
            known = True
        assert known == (method in LLHTTP_METHODS), method


def test_split_method() -> None:
    assert split_method(b"GET / HTTP/1.1", 0) == 3
    assert split_method(b"\r\nBREW /pot", 2) == 6
    assert split_method(b"FO", 0) == -1  # more bytes needed
    assert split_method(b"\x16\x03\x01", 0) == 0  # not a token: llhttp refuses it
    with pytest.raises(FramingError):
        split_method(b"X" * 100 + b" /", 0)


def decode(data: bytes, cuts: int = 0) -> tuple[bytes, int, int]:
    body = ChunkedBody()
    out: list[bytes] = []
    pieces = [data[i:i + cuts] for i in range(0, len(data), cuts)] if cuts else [data]
    used = 0
    for piece in pieces:
        stop = body.feed(piece, 0, out)
        used += stop
        if body.state == DONE:
            break
    return b"".join(out), body.state, used


@pytest.mark.parametrize("cuts", [0, 1, 3])
def test_chunks_with_bws_extensions_trailers_and_what_follows(cuts: int) -> None:
    data = (b"5 ; a = b\r\nhello\r\n6;name=\"q v\";x\r\n world\r\n3\t;\tk=v\r\n!!!\r\n0\r\n"
            b"X-Trailer: 1\r\n\r\nGET / HTTP/1.1\r\n")
    got, state, used = decode(data, cuts)
    assert got == b"hello world!!!" and state == DONE
    if not cuts:
        assert data[used:] == b"GET / HTTP/1.1\r\n"


@pytest.mark.parametrize("bad", [
    b"zz\r\n", b"0x5\r\nhello\r\n0\r\n\r\n", b"-1\r\nx\r\n", b"fffffffffffffffff1\r\nx\r\n",
    b"3\r\nabcdef\r\n", b"5\nhello\r\n", b"5 \r\nhello\r\n", b"5;\r\nhello\r\n", b"5;a=\r\nhello\r\n",
    b"5;a b\r\nhello\r\n", b"0\r\n folded: x\r\n\r\n", b"0\r\n: v\r\n\r\n", b"0\r\nX: a\x00b\r\n\r\n",
    b"5\r\nhello\r\r\n", b"+5\r\nhello\r\n",
])
def test_malformed_chunked_bodies_are_refused(bad: bytes) -> None:
    with pytest.raises(FramingError):
        decode(bad)
    with pytest.raises(FramingError):
        decode(bad, 1)
