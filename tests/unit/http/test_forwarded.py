"""ForwardedInjector: X-Forwarded-* added to every request of a raw HTTP/1.x stream, whatever
the splits of the data, and never inside a body."""

from __future__ import annotations

import httptools
from hypothesis import given, settings
from hypothesis import strategies as st

from fulcrum.proxy.forwarded import MAX_HEAD, ForwardedInjector


def run(chunks: list[bytes], ip: str = "203.0.113.7", proto: str = "http") -> tuple[bytes, ForwardedInjector]:
    inj = ForwardedInjector(ip, proto)
    return b"".join(inj.feed(c) for c in chunks), inj


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points + [len(data)]:
        pieces.append(data[last:p])
        last = p
    return pieces


class Collect:
    """httptools callbacks gathering each request's headers and body."""

    def __init__(self) -> None:
        self.requests: list[dict[str, object]] = []

    def on_message_begin(self) -> None:
        self.requests.append({"headers": [], "body": b""})

    def on_header(self, name: bytes, value: bytes) -> None:
        self.requests[-1]["headers"].append((name.lower(), value))  # type: ignore[union-attr]

    def on_body(self, body: bytes) -> None:
        self.requests[-1]["body"] += body  # type: ignore[operator]


def parse(stream: bytes) -> list[dict[str, object]]:
    c = Collect()
    httptools.HttpRequestParser(c).feed_data(stream)
    return c.requests


PIPELINE = (
    b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 198.51.100.1\r\nX-Forwarded-Proto: https\r\n\r\n"
    b"POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 40\r\n\r\n"
    b"GET /smuggled HTTP/1.1\r\nHost: evil\r\n\r\n\r\n"
    b"PUT /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;ext=1\r\nhello\r\n19\r\nGET /x HTTP/1.1\r\n\r\nabcdef\r\n0\r\nChecksum: 1\r\n\r\n"
    b"\r\nHEAD /last HTTP/1.0\r\nhost: a\r\n\r\n"
)


def check_pipeline(out: bytes) -> None:
    reqs = parse(out)
    assert len(reqs) == 4
    for r in reqs:
        headers = r["headers"]
        assert [v for n, v in headers if n == b"x-forwarded-proto"] == [b"http"]  # type: ignore[union-attr]
    xff = [[v for n, v in r["headers"] if n == b"x-forwarded-for"] for r in reqs]  # type: ignore[union-attr]
    assert xff == [[b"198.51.100.1, 203.0.113.7"]] + [[b"203.0.113.7"]] * 3
    assert reqs[1]["body"] == b"GET /smuggled HTTP/1.1\r\nHost: evil\r\n\r\n\r\n"
    assert reqs[2]["body"] == b"hello" + b"GET /x HTTP/1.1\r\n\r\nabcdef"
    assert out.count(b"X-Forwarded-Proto") == 4


def test_pipeline_in_one_piece() -> None:
    out, inj = run([PIPELINE])
    check_pipeline(out)
    assert inj.requests == 4 and not inj.passing_through


def test_pipeline_byte_by_byte() -> None:
    out, _ = run([PIPELINE[i:i + 1] for i in range(len(PIPELINE))])
    check_pipeline(out)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=30))
def test_pipeline_any_split(cuts: list[int]) -> None:
    whole, _ = run([PIPELINE])
    out, _ = run(split_at(PIPELINE, cuts))
    assert out == whole


bodies = st.binary(max_size=300)


@st.composite
def request_streams(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    stream, expected_bodies = b"", []
    for _ in range(draw(st.integers(1, 5))):
        body = draw(bodies)
        framing = draw(st.sampled_from(["none", "length", "chunked"]))
        head = b"POST /p HTTP/1.1\r\nHost: h\r\n"
        if framing == "none":
            body = b""
            stream += head + b"\r\n"
        elif framing == "length":
            stream += head + b"Content-Length: %d\r\n\r\n" % len(body) + body
        else:
            cuts = draw(st.lists(st.integers(0, len(body)), max_size=4))
            chunks = [c for c in split_at(body, cuts) if c]
            stream += head + b"Transfer-Encoding: chunked\r\n\r\n"
            stream += b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
        expected_bodies.append(body)
    return stream, expected_bodies


@settings(max_examples=300, deadline=None)
@given(request_streams(), st.lists(st.integers(min_value=0, max_value=5_000), max_size=20))
def test_generated_streams_keep_bodies_and_get_headers(sample: tuple[bytes, list[bytes]], cuts: list[int]) -> None:
    stream, expected = sample
    out, inj = run(split_at(stream, cuts))
    reqs = parse(out)
    assert [r["body"] for r in reqs] == expected
    assert inj.requests == len(expected)
    for r in reqs:
        assert (b"x-forwarded-for", b"203.0.113.7") in r["headers"]  # type: ignore[operator]


def test_upgrade_then_pass_through() -> None:
    stream = (b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
              b"GET / HTTP/1.1\r\n\r\n")
    out, inj = run([stream])
    assert out.count(b"X-Forwarded-For") == 1
    assert out.endswith(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n")
    assert inj.passing_through


def test_connect_then_pass_through() -> None:
    out, inj = run([b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n\x16\x03\x01binary"])
    assert out.endswith(b"\r\n\r\n\x16\x03\x01binary") and inj.passing_through


def test_non_http_passes_through_at_once() -> None:
    inj = ForwardedInjector("1.1.1.1", "http")
    assert inj.feed(b"\x16\x03\x01") == b"\x16\x03\x01"
    assert inj.passing_through
    assert inj.feed(b"more") == b"more"


def test_bare_lf_passes_through_unchanged() -> None:
    stream = b"GET / HTTP/1.1\nHost: a\n\n"
    out, inj = run([stream[i:i + 1] for i in range(len(stream))])
    assert out == stream and inj.passing_through


def test_http09_or_junk_request_line_passes_through() -> None:
    for stream in (b"GET /\r\n\r\n", b"GET / HTTP/2.0\r\n\r\n", b"G ET / HTTP/1.1\r\n\r\n"):
        out, inj = run([stream])
        assert out == stream and inj.passing_through


def test_oversized_head_passes_through() -> None:
    stream = b"GET / HTTP/1.1\r\nX-Big: " + b"a" * MAX_HEAD + b"\r\n\r\n"
    out, inj = run([stream[i:i + 4096] for i in range(0, len(stream), 4096)])
    assert out == stream and inj.passing_through


def test_unframeable_requests_pass_through_unchanged() -> None:
    cases = [
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
    ]
    for stream in cases:
        out, inj = run([stream])
        assert out == stream, stream
        assert inj.passing_through, stream


def test_bad_chunk_terminator_passes_rest_through() -> None:
    stream = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\naXX0\r\n\r\nGET / HTTP/1.1\r\n\r\n"
    out, inj = run([stream])
    assert out.count(b"X-Forwarded-For") == 1 and inj.passing_through
    assert out.endswith(b"1\r\naXX0\r\n\r\nGET / HTTP/1.1\r\n\r\n")


def test_disabled_is_identity() -> None:
    inj = ForwardedInjector("1.1.1.1", "http", enabled=False)
    assert inj.feed(b"GET / HTTP/1.1\r\n\r\n") == b"GET / HTTP/1.1\r\n\r\n"


def test_proto_replaced_and_zero_length_body() -> None:
    out, _ = run([b"POST / HTTP/1.1\r\nx-forwarded-proto: https\r\nContent-Length: 0\r\n\r\n"
                  b"GET /2 HTTP/1.1\r\n\r\n"], proto="http")
    assert b"https" not in out
    assert out.count(b"X-Forwarded-Proto: http\r\n") == 2
