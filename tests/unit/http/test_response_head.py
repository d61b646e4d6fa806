"""Response heads cut with bytes operations (headers.py:cut_response_head, field_lines;
core/server.py): llhttp reads the head with no callback per field, then the head is split
once. Every refusal is a 502 to the client and the server connection closed, whether the
head comes whole or byte by byte."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from playbook import OK, Playbook, get

from fulcrum.proxy.http import headers as hdr
from fulcrum.proxy.http.core.server import MAX_RESPONSE_HEAD
from fulcrum.proxy.http.core.states import ServerState


@pytest.fixture(autouse=True)
def no_internal_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, errors[0].getMessage()


def answer(response: bytes, whole: bool = True) -> tuple[bytes, Playbook]:
    """What the client gets for `response`, fed in one read or one byte per read."""
    p = Playbook(servers=1)
    p.client(get("/"))
    side = p.connect()
    if whole:
        p.server(side, response)
    else:
        for i in range(len(response)):
            p.server(side, response[i:i + 1])
    return p.to_client(), p


def refused(response: bytes, whole: bool) -> bool:
    out, p = answer(response, whole)
    side_closed = any(aborted is not None for aborted in p.closed_sides.values())
    return out.startswith(b"HTTP/1.1 502 ") and side_closed


# -- refusals: each a 502 -----------------------------------------------------------------------

BAD_HEADS = {
    "bare LF ending a field": b"HTTP/1.1 200 OK\r\nA: b\nContent-Length: 2\r\n\r\nok",
    "bare LF ending the head": b"HTTP/1.1 200 OK\r\nContent-Length: 2\n\nok",
    "bare LF after the status line": b"HTTP/1.1 200 OK\nContent-Length: 2\r\n\r\nok",
    "bare CR in a field": b"HTTP/1.1 200 OK\r\nA: b\rC: d\r\nContent-Length: 2\r\n\r\nok",
    "CR LF LF": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\nok",
    "obs-fold": b"HTTP/1.1 200 OK\r\nA: b\r\n c\r\nContent-Length: 2\r\n\r\nok",
    "NUL in a value": b"HTTP/1.1 200 OK\r\nA: b\x00c\r\nContent-Length: 2\r\n\r\nok",
    "control byte in a value": b"HTTP/1.1 200 OK\r\nA: \x01\r\nContent-Length: 2\r\n\r\nok",
    "whitespace before the colon": b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok",
    "a line without a colon": b"HTTP/1.1 200 OK\r\nContent-Length\r\n\r\nok",
    "an empty name": b"HTTP/1.1 200 OK\r\n: b\r\nContent-Length: 2\r\n\r\nok",
    "duplicate Content-Length": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
    "Content-Length list": b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok",
    "Content-Length not digits": b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
    "Content-Length with Transfer-Encoding": (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                                              b"Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"),
    "a four-digit status": b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok",
    "no status": b"HTTP/1.1 OK\r\nContent-Length: 2\r\n\r\nok",
    "not HTTP": b"SSH-2.0-OpenSSH\r\n\r\n",
}


@pytest.mark.parametrize("whole", [True, False], ids=["whole", "byte by byte"])
@pytest.mark.parametrize("name", sorted(BAD_HEADS))
def test_malformed_response_heads_are_refused(name: str, whole: bool) -> None:
    assert refused(BAD_HEADS[name], whole), name


def fields(count: int) -> bytes:
    return b"".join(b"X-%d: v\r\n" % i for i in range(count))


@pytest.mark.parametrize("whole", [True, False], ids=["whole", "byte by byte"])
def test_more_than_500_fields_are_refused(whole: bool) -> None:
    ok = b"HTTP/1.1 200 OK\r\n" + fields(hdr.MAX_RESPONSE_FIELDS - 1) + b"Content-Length: 2\r\n\r\nok"
    out, _ = answer(ok, whole)
    assert out.startswith(b"HTTP/1.1 200 OK\r\n") and out.endswith(b"\r\n\r\nok")
    too_many = b"HTTP/1.1 200 OK\r\n" + fields(hdr.MAX_RESPONSE_FIELDS) + b"Content-Length: 2\r\n\r\nok"
    assert refused(too_many, whole)


def test_too_many_fields_are_refused_before_the_head_ends() -> None:
    # a server that never ends its head is refused once it is over the bound, not at a timeout
    p = Playbook(servers=1)
    p.client(get("/"))
    a = p.connect()
    p.server(a, b"HTTP/1.1 200 OK\r\n")
    p.server(a, fields(hdr.MAX_RESPONSE_FIELDS))
    assert p.to_client() == b""  # 500 fields: still within the bound
    p.server(a, b"X: y\r\n")
    assert p.to_client().startswith(b"HTTP/1.1 502 ") and p.side_closed(a) is True


def test_a_head_larger_than_the_bound_is_refused_before_it_ends() -> None:
    p = Playbook(servers=1)
    p.client(get("/"))
    a = p.connect()
    p.server(a, b"HTTP/1.1 200 OK\r\nX-Big: ")
    value = b"v" * 65536
    for _ in range(MAX_RESPONSE_HEAD // len(value) - 1):
        p.server(a, value)
    assert p.to_client() == b""
    p.server(a, value)
    assert p.to_client().startswith(b"HTTP/1.1 502 ") and p.side_closed(a) is True


def test_a_head_without_its_end_is_never_cut() -> None:
    # llhttp ends a head only at CR LF CR LF: were it ever to end one elsewhere, the cut
    # refuses the head instead of reading fields out of the body
    with pytest.raises(hdr.ResponseHeadError):
        hdr.cut_response_head(b"HTTP/1.1 200 OK\r\nA: b\n\nbody", 0)


# -- what passes: the same whole or byte by byte ------------------------------------------------

GOOD = (b"HTTP/1.1 200 Fine Thanks\r\nServer: x\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n"
        b"Keep-Alive: timeout=5\r\nB:\tc \t\r\nD:e\r\nContent-Length: 2\r\n\r\nok")


@pytest.mark.parametrize("whole", [True, False], ids=["whole", "byte by byte"])
def test_fields_pass_as_sent_without_hop_by_hop(whole: bool) -> None:
    out, p = answer(GOOD, whole)
    # hop-by-hop and the fields Connection names dropped (RFC 9110 §7.6.1); the others as sent
    assert out == b"HTTP/1.1 200 Fine Thanks\r\nServer: x\r\nB:\tc \t\r\nD:e\r\nContent-Length: 2\r\n\r\nok"
    assert p.closed is None


@pytest.mark.parametrize("status_line,reason", [
    (b"HTTP/1.1 200", b"-"), (b"HTTP/1.1 200 ", b"-"), (b"HTTP/1.1 200  two spaces ", b" two spaces "),
    (b"HTTP/1.1 200 caf\xc3\xa9", b"caf\xc3\xa9"), (b"HTTP/1.1 200 \t", b"\t"),
])
def test_reason_phrases(status_line: bytes, reason: bytes) -> None:
    out, _ = answer(status_line + b"\r\nContent-Length: 2\r\n\r\nok")
    assert out == b"HTTP/1.1 200 " + reason + b"\r\nContent-Length: 2\r\n\r\nok"


def test_empty_lines_before_the_status_line_are_skipped() -> None:
    out, _ = answer(b"\r\n\r\n" + OK)
    assert out == OK


def test_a_final_response_after_interim_ones_in_the_same_read() -> None:
    p = Playbook(servers=1)
    p.client(get("/up", "Content-Length: 2\r\n", method="POST") + b"hi")
    a = p.connect()
    p.server(a, b"HTTP/1.1 100 Continue\r\nA: 1\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n"
                b"HTTP/1.1 201 Created\r\nLocation: /x\r\nContent-Length: 2\r\n\r\nok")
    assert p.to_client() == (b"HTTP/1.1 100 Continue\r\nA: 1\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n"
                             b"HTTP/1.1 201 Created\r\nLocation: /x\r\nContent-Length: 2\r\n\r\nok")
    assert a.state is ServerState.IDLE


def test_an_interim_head_then_a_final_one_cut_by_reads() -> None:
    response = (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nServer: s\r\nContent-Length: 2\r\n\r\nok")
    for cut in range(1, len(response)):
        p = Playbook(servers=1)
        p.client(get("/up", "Content-Length: 2\r\n", method="POST") + b"hi")
        a = p.connect()
        p.server(a, response[:cut])
        p.server(a, response[cut:])
        assert p.to_client() == response, cut
        assert a.state is ServerState.IDLE


def test_location_is_rewritten_and_other_fields_kept() -> None:
    lines = [b"Location:  http://10.0.0.5:8080/a", b"Link: http://10.0.0.5:8080/",
             b"Transfer-Encoding: gzip", b"transfer-encoding: chunked", b"content-length: 3",
             b"URI: http://elsewhere/"]
    parts, has_length, codings, urls = hdr.field_lines(lines, True)
    assert urls == [1, 4] and has_length and codings == b"gzip, chunked"
    hdr.rewrite_lines(parts, urls, (b"http://10.0.0.5:8080",), b"https://pub")
    assert parts == [b"", b"Location: https://pub/a", b"Link: http://10.0.0.5:8080/", b"content-length: 3",
                     b"URI: http://elsewhere/"]
    assert hdr.field_lines(lines, False)[3] == []  # rewriting off: nothing looked up


def test_the_server_origins_are_looked_up_only_for_a_location() -> None:
    p = Playbook(servers=1)
    asked: list[bytes | None] = []
    p.svc.location_origins = lambda backend, host: (asked.append(host), ((b"http://10.0.0.1",), b"http://a"))[1]  # type: ignore[method-assign]
    p.client(get("/"))
    a = p.connect()
    p.server(a, OK)
    assert p.to_client() == OK and asked == []
    p.client(get("/"))
    p.server(a, b"HTTP/1.1 302 Found\r\nLocation: http://10.0.0.1/x\r\nContent-Length: 0\r\n\r\n")
    assert p.to_client() == b"HTTP/1.1 302 Found\r\nLocation: http://a/x\r\nContent-Length: 0\r\n\r\n"
    assert asked == [b"a"]
