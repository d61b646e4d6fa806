"""Playbooks of the HTTP core (proxy/http/core): events in, bytes and actions out, no sockets.

Every rule of the transition tables (core/states.py) is taken by at least one of these
scripts (test_core_table.py checks it), so removing a rule makes a playbook raise."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from playbook import OK, Playbook, get

from fulcrum.proxy.http.core import actions as act
from fulcrum.proxy.http.core.states import ClientState, ExchangeState, ServerState

C = ClientState


@pytest.fixture(autouse=True)
def no_internal_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """An illegal move or a bug inside a parser callback is logged as an internal error."""
    yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, errors[0].getMessage()


def status_of(data: bytes) -> int:
    return int(data.split(b" ", 2)[1])


# -- keep-alive and pipelining ----------------------------------------------------------------


def test_idle_server_connections_close_on_bytes_fin_or_age() -> None:
    p = Playbook(servers=1)
    p.client(get("/1"))
    a = p.connect()
    p.server(a, OK)
    assert p.svc.idle.expired(p.now + 4) == []
    assert p.svc.idle.expired(p.now + 4.5) == [a] and a.state is ServerState.CLOSED
    p.client(get("/2"))
    b = p.connect()  # the pool was empty
    p.server(b, OK)
    p.svc.idle.drop(b)  # the shell saw a byte or a FIN from it while idle
    assert b.state is ServerState.CLOSED
    p.client(get("/3"))
    assert p.connects() == 1


def test_keep_alive_reuses_the_server_connection() -> None:
    p = Playbook(servers=1)
    p.client(get("/1"))
    a = p.connect()
    assert p.to_server(a) == get("/1")
    p.server(a, OK)
    assert p.to_client() == OK
    assert a.state is ServerState.IDLE and p.side_closed(a) is None
    p.client(get("/2"))
    assert p.connects() == 0  # the idle connection was taken
    assert p.to_server(a) == get("/2")
    p.server(a, OK)
    assert p.to_client() == OK and p.closed is None


def test_pipelining_with_a_rejection_in_the_middle() -> None:
    # RFC 9112 §9.3.2: answers in order; the bad third request is answered after the first
    # two, then the connection closes, and nothing of it reaches a server.
    p = Playbook(servers=1)
    p.client(get("/1") + get("/2") + b"GET /3 HTTP/1.1\r\nHost a\r\n\r\n" + get("/smuggled"))
    assert not p.reading  # a second request waits: the client is not read further
    p.client_eof()  # and a FIN changes nothing: what is due is still answered
    a = p.connect()
    assert p.to_server(a) == get("/1")
    assert p.to_client() == b""  # the rejection waits for the answers due before it
    p.server(a, OK)
    assert p.to_client() == OK
    assert p.to_server(a) == get("/2")  # the waiting one went on the kept connection
    p.server(a, OK)
    out = p.to_client()
    assert out.startswith(OK + b"HTTP/1.1 400 ")
    assert p.closed is False and p.svc.statuses == [200, 200, 400]
    assert b"smuggled" not in p.to_server(a)


def test_a_waiting_pipelined_request_is_not_timed_out() -> None:
    p = Playbook(servers=1, header_timeout=10)
    p.client(get("/1") + b"GET /2 HTTP/1.1\r\nHo")
    a = p.connect()
    p.wait(30)  # the server is slow; the client is not read meanwhile: not its fault
    assert p.closed is None
    p.server(a, OK)
    assert p.to_client() == OK and p.reading
    p.wait(11)
    assert status_of(p.to_client()) == 408 and p.closed is False


def test_connection_close_request_is_the_last_one_read() -> None:
    p = Playbook(servers=1)
    p.client(get("/1", "Connection: close\r\n") + get("/ignored"))
    assert p.core.state is C.MUST_CLOSE and not p.reading
    p.client_eof()  # a FIN after it changes nothing
    a = p.connect()
    assert p.to_server(a) == get("/1")
    p.server(a, OK)
    assert p.to_client() == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    assert p.closed is False and p.connects() == 0


# -- retries: reused connection reset × idempotent × body sent (RFC 9110 §9.2.2) ----------------


def reused_connection(p: Playbook) -> object:
    p.client(get("/warm"))
    a = p.connect()
    p.server(a, OK)
    p.to_client()
    p.to_server(a)
    return a


def test_get_on_a_reused_connection_that_resets_is_sent_again() -> None:
    p = Playbook(servers=1)
    a = reused_connection(p)
    p.client(get("/x"))
    assert p.to_server(a) == get("/x")  # type: ignore[arg-type]
    p.server_lost(a)  # type: ignore[arg-type]
    assert p.side_closed(a) is True  # type: ignore[arg-type]
    b = p.connect()  # a fresh connection, the same server allowed after a reused one
    assert p.to_server(b) == get("/x")
    p.server(b, OK)
    assert p.to_client() == OK and p.closed is None


def test_post_on_a_reused_connection_that_resets_is_not_sent_twice() -> None:
    p = Playbook(servers=1)
    a = reused_connection(p)
    p.client(get("/x", method="POST"))
    p.server_eof(a)  # type: ignore[arg-type]
    assert p.connects() == 0
    assert status_of(p.to_client()) == 502 and p.closed is False


def test_put_with_a_body_is_not_sent_twice() -> None:
    p = Playbook(servers=1)
    a = reused_connection(p)
    p.client(get("/x", "Content-Length: 3\r\n", method="PUT") + b"abc")
    assert p.to_server(a).endswith(b"\r\n\r\nabc")  # type: ignore[arg-type]
    p.server_eof(a)  # type: ignore[arg-type]
    assert p.connects() == 0 and status_of(p.to_client()) == 502


def test_get_after_part_of_the_response_arrived_is_not_sent_twice() -> None:
    p = Playbook(servers=1)
    a = reused_connection(p)
    p.client(get("/x"))
    p.server(a, b"HTTP/1.1 200 OK\r\nConte")  # type: ignore[arg-type]
    p.server_eof(a)  # type: ignore[arg-type]
    assert p.connects() == 0 and status_of(p.to_client()) == 502


def test_get_on_a_fresh_connection_goes_to_another_server_once() -> None:
    p = Playbook(servers=3)
    p.client(get("/x"))
    a = p.connect()
    p.server_eof(a)
    b = p.connect()
    assert b.backend is not a.backend
    p.server_eof(b)  # the retry failed too: that failure is the answer
    assert p.connects() == 0 and status_of(p.to_client()) == 502


def test_connect_failure_goes_to_another_server_any_method() -> None:
    p = Playbook(servers=2)
    p.client(get("/x", "Content-Length: 1\r\n", method="POST") + b"z")
    p.refuse()
    b = p.connect()
    assert b.backend.key == "10.0.0.2:80"
    assert p.to_server(b).endswith(b"\r\n\r\nz")  # the body held while connecting goes too
    p.server(b, OK)
    assert p.to_client() == OK


def test_every_server_refusing_is_a_503_and_stubborn_does_not_fail_over() -> None:
    p = Playbook(servers=2)
    p.client(get("/x"))
    p.refuse()
    p.refuse()
    out = p.to_client()
    assert status_of(out) == 503 and b"Retry-After: 5" in out
    s = Playbook(servers=2, pool={"stubborn": True})
    s.client(get("/x"))
    s.refuse()
    assert s.connects() == 0 and status_of(s.to_client()) == 503


def test_response_timeout_is_504_and_starts_once_the_request_is_sent() -> None:
    p = Playbook(servers=1, response_timeout=5, body_timeout=60)
    p.client(get("/up", "Content-Length: 4\r\n", method="POST") + b"ab")
    a = p.connect()
    p.wait(10)  # the upload is still going: the server is not late (issue 7)
    assert p.closed is None
    p.client(b"cd")
    p.wait(4)
    p.server(a, b"HTTP/1.1 200 OK\r\n")  # every byte restarts it
    p.wait(4)
    assert p.closed is None
    p.wait(2)
    assert status_of(p.to_client()) == 504 and p.side_closed(a) is True


def test_a_slow_client_holds_the_response_timeout() -> None:
    p = Playbook(servers=1, response_timeout=5)
    p.client(get("/big"))
    a = p.connect()
    p.client_write_paused()
    p.wait(4)
    p.wait(4)
    assert p.closed is None and (act.PAUSE_SERVER, a) in p.actions()


# -- 100-continue, upgrade -------------------------------------------------------------------------


def test_100_continue_reaches_http11_clients_only() -> None:
    p = Playbook(servers=1)
    p.client(get("/up", "Expect: 100-continue\r\nContent-Length: 2\r\n", method="POST"))
    a = p.connect()
    p.server(a, b"HTTP/1.1 100 Continue\r\n\r\n")
    assert p.to_client() == b"HTTP/1.1 100 Continue\r\n\r\n"
    p.client(b"hi")
    assert p.to_server(a).endswith(b"\r\n\r\nhi")
    p.server(a, OK)
    assert p.to_client() == OK
    q = Playbook(servers=1)
    q.client(b"POST /up HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
    b = q.connect()
    q.server(b, b"HTTP/1.1 100 Continue\r\n\r\n")
    assert q.to_client() == b""  # RFC 9110 §15.2: never to an HTTP/1.0 client


UPGRADE = get("/ws", "Connection: Upgrade\r\nUpgrade: websocket\r\n")
SWITCHED = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"


def test_upgrade_holds_what_follows_until_the_101_then_tunnels() -> None:
    p = Playbook(servers=1)
    p.client(UPGRADE + b"frame-1")
    a = p.connect()
    sent = p.to_server(a)
    assert sent.endswith(b"Connection: upgrade\r\n\r\n") and b"frame-1" not in sent
    assert not p.reading
    p.server(a, SWITCHED + b"hello")
    assert p.to_client() == SWITCHED + b"hello"
    assert p.to_server(a) == b"frame-1" and p.reading
    p.client(b"frame-2")
    assert p.to_server(a) == b"frame-2"
    p.server(a, b"bye")
    assert p.to_client() == b"bye"
    p.client_eof()
    assert id(a) in p.eof_to_server
    p.server_eof(a)
    assert p.eof_to_client
    p.server_lost(a)
    assert p.closed is False


def test_declined_upgrade_parses_what_followed_as_the_next_request() -> None:
    # issue 7: a second request smuggled behind an Upgrade must go through every check
    p = Playbook(servers=1)
    p.client(UPGRADE + get("/next"))
    a = p.connect()
    assert b"/next" not in p.to_server(a)
    p.server(a, OK)
    assert p.to_client() == OK
    assert p.side_closed(a) is False  # never reused after an upgrade
    b = p.connect()
    assert p.to_server(b) == get("/next")
    q = Playbook(servers=1)
    q.client(UPGRADE + b"GET /smuggled HTTP/1.1\r\n\r\n")  # no Host: 400 when parsed
    c = q.connect()
    q.server(c, OK)
    assert q.to_client().startswith(OK + b"HTTP/1.1 400 ")
    assert q.connects() == 0 and q.closed is False


def test_fin_after_an_upgrade_request() -> None:
    p = Playbook(servers=1)
    p.client(UPGRADE)
    a = p.connect()
    p.client_eof()
    p.server(a, SWITCHED)
    assert id(a) in p.eof_to_server  # passed on once the tunnel stands
    q = Playbook(servers=1)
    q.client(UPGRADE)
    b = q.connect()
    q.client_eof()
    q.server(b, OK)
    assert q.to_client() == OK and q.closed is False  # declined: answered, then closed


def test_upgrade_request_whose_server_fails_gets_502() -> None:
    p = Playbook(servers=1)
    p.client(get("/ws", "Connection: Upgrade\r\nUpgrade: websocket\r\n", method="POST"))
    a = p.connect()
    p.server_eof(a)
    assert status_of(p.to_client()) == 502 and p.closed is False


# -- response framing: HEAD, 204, 304, no length ------------------------------------------------


def test_head_response_ends_at_its_head_and_the_connection_is_not_reused() -> None:
    p = Playbook(servers=1)
    p.client(get("/", method="HEAD"))
    a = p.connect()
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
    p.server(a, head)
    assert p.to_client() == head
    assert p.side_closed(a) is False and p.core.state is C.IDLE and p.core.timer == "keepalive"


@pytest.mark.parametrize("status", [204, 304])
def test_204_and_304_have_no_body_and_keep_the_connection(status: int) -> None:
    p = Playbook(servers=1)
    p.client(get("/"))
    a = p.connect()
    head = b"HTTP/1.1 %d X\r\nETag: 1\r\n\r\n" % status
    p.server(a, head)
    assert p.to_client() == head and a.state is ServerState.IDLE


def test_response_without_length_is_chunked_for_11_and_read_until_close_for_10() -> None:
    p = Playbook(servers=1)
    p.client(get("/"))
    a = p.connect()
    p.server(a, b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabc")
    assert p.to_client() == b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
    p.server_eof(a)  # RFC 9112 §6.3 (8): the end of the connection is the end of the body
    assert p.to_client() == b"0\r\n\r\n" and p.closed is None and p.side_closed(a) is False
    q = Playbook(servers=1)
    q.client(b"GET / HTTP/1.0\r\n\r\n")
    b = q.connect()
    q.server(b, b"HTTP/1.1 200 OK\r\n\r\nabc")
    assert q.to_client() == b"HTTP/1.0 200 OK\r\nConnection: close\r\n\r\nabc"
    q.server_eof(b)
    assert q.closed is False


def test_bytes_after_a_complete_response_close_the_server_connection() -> None:
    # issue 7: they would be read as the next client's response
    p = Playbook(servers=1)
    p.client(get("/"))
    a = p.connect()
    p.server(a, OK + b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil")
    assert p.to_client() == OK
    assert p.side_closed(a) is False and a.state is ServerState.CLOSED
    q = Playbook(servers=1)
    q.client(get("/"))
    b = q.connect()
    q.server(b, OK + b"garbage")
    assert q.to_client() == OK and q.side_closed(b) is False


def test_a_bad_response_is_a_502() -> None:
    p = Playbook(servers=1)
    p.client(get("/", method="POST"))
    a = p.connect()
    p.server(a, b"SSH-2.0-OpenSSH\r\n")
    assert status_of(p.to_client()) == 502 and p.side_closed(a) is True


# -- a server closing mid-body, a client closing mid-upload, half-close -----------------------------


def test_server_closing_mid_body_cuts_the_client() -> None:
    # issue 7: with a known length the client must see an abort, not a clean end
    p = Playbook(servers=1)
    p.client(get("/"))
    a = p.connect()
    p.server(a, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
    p.to_client()
    p.server_eof(a)
    assert p.closed is True and p.side_closed(a) is True


def test_client_closing_mid_upload_aborts_the_server_side_at_once() -> None:
    p = Playbook(servers=1)
    p.client(get("/up", "Content-Length: 100000\r\n", method="POST") + b"x" * 1000)
    a = p.connect()
    p.client_eof()
    assert p.side_closed(a) is True and p.closed is not None
    assert p.svc.records == [(0, "client_abort")]


def test_client_half_close_after_pipelined_requests_gets_both_answers() -> None:
    p = Playbook(servers=1)
    p.client(get("/1") + get("/2"))
    p.client_eof()
    a = p.connect()
    p.server(a, OK)
    p.server(a, OK)
    assert p.to_client() == OK + OK and p.closed is False
    assert p.side_closed(a) is None  # the server connection stays in the pool


def test_fin_inside_a_head_drops_the_partial_request() -> None:
    p = Playbook(servers=1)
    p.client(get("/1") + b"GET /2 HT")
    a = p.connect()
    p.client_eof()
    p.client_eof()  # a second FIN (TLS close_notify, then TCP's)
    p.server(a, OK)
    assert p.to_client() == OK and p.closed is False
    q = Playbook()
    q.client_eof()
    assert q.closed is False  # nothing asked: closed at once


# -- timeouts -------------------------------------------------------------------------------------


def test_head_timeout_is_408_also_before_any_byte() -> None:
    p = Playbook(header_timeout=10)
    p.wait(11)
    assert status_of(p.to_client()) == 408 and p.closed is False
    q = Playbook(header_timeout=10)
    q.client(b"GET / HTTP/1.1\r\nHost:")
    q.wait(5)
    q.client(b" a\r\n")  # bytes do not restart the head's deadline
    q.wait(6)
    assert status_of(q.to_client()) == 408


def test_body_timeout_is_408_and_aborts_the_server_side() -> None:
    p = Playbook(servers=1, body_timeout=5)
    p.client(get("/up", "Content-Length: 10\r\n", method="POST") + b"abc")
    a = p.connect()
    p.wait(4)
    p.client(b"d")  # every byte restarts it
    p.wait(4)
    assert p.closed is None
    p.wait(2)
    assert status_of(p.to_client()) == 408 and p.side_closed(a) is True


def test_idle_keep_alive_connection_is_closed_without_an_answer() -> None:
    p = Playbook(servers=1, keepalive_timeout=30)
    p.client(get("/"))
    a = p.connect()
    p.server(a, OK)
    p.to_client()
    p.wait(31)
    assert p.to_client() == b"" and p.closed is False


# -- answers of the proxy's own, rejections, graceful stop ------------------------------------------


def test_no_usable_server_is_503_even_while_the_body_arrives() -> None:
    p = Playbook(servers=1)
    p.svc.pool.backends[0].state = "disabled"
    p.client(get("/up", "Content-Length: 10\r\n", method="POST") + b"abc")
    assert status_of(p.to_client()) == 503 and p.closed is False


def test_an_answer_of_our_own_while_a_pipelined_head_arrives_closes() -> None:
    p = Playbook(servers=1)
    p.client(get("/1", method="POST") + b"GET /2 HT")
    a = p.connect()
    p.server_eof(a)
    assert status_of(p.to_client()) == 502 and p.closed is False


def test_redirect_https_answers_308() -> None:
    p = Playbook(redirect_https=True)
    p.client(get("/a?b"))
    out = p.to_client()
    assert status_of(out) == 308 and b"Location: https://a/a?b" in out and p.closed is False


def test_head_and_body_rejections() -> None:
    p = Playbook(servers=1, max_request_line=64)
    p.client(b"GET /" + b"x" * 100 + b" HTTP/1.1\r\n")
    assert status_of(p.to_client()) == 414
    q = Playbook(servers=1)
    q.client(get("/", "Transfer-Encoding: chunked\r\n", method="POST") + b"3\r\nabc\r\n")
    a = q.connect()
    q.client(b"zz\r\n")  # not a chunk size
    assert status_of(q.to_client()) == 400 and q.side_closed(a) is True  # out of step: reset
    r = Playbook(servers=1)
    r.client(b"\x16\x03\x01 not http\r\n\r\n")
    assert status_of(r.to_client()) == 400
    r.client_eof()  # FIN after bad input changes nothing
    assert r.core.state is C.CLOSED


def test_head_bytes_count_only_the_head() -> None:
    # issue 7: a large body followed by the start of a pipelined head is not a 431
    p = Playbook(servers=1, max_header_bytes=256, max_request_line=64)
    p.client(get("/up", "Content-Length: 100000\r\n", method="POST"))
    a = p.connect()
    p.client(b"x" * 100000 + b"GET /2 HTTP/1.1\r\nHo")
    p.server(a, OK)
    p.client(b"st: a\r\n\r\n")
    assert p.to_client() == OK and p.closed is None
    q = Playbook(servers=1, max_header_bytes=256, max_request_line=64)
    q.client(b"GET / HTTP/1.1\r\nX: ")
    q.client(b"y" * 400)  # one field that never ends
    assert status_of(q.to_client()) == 431


def test_drain_closes_idle_connections_and_says_close_on_busy_ones() -> None:
    p = Playbook()
    p.drain()
    assert p.closed is False
    q = Playbook(servers=1)
    q.client(get("/"))
    a = q.connect()
    q.drain()
    q.server(a, OK)
    assert q.to_client() == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    assert q.closed is False


def test_trusted_proxy_header_gives_the_client_address() -> None:
    p = Playbook(servers=1)
    p.core.proxy_header = b""
    p.client(b"PROXY TCP4 203.0.113.9 192.0.2.1 5555 80\r\n" + get("/"))
    assert p.core.client_ip == "203.0.113.9"
    q = Playbook(servers=1)
    q.core.proxy_header = b""
    q.client(get("/"))
    assert status_of(q.to_client()) == 400


# -- the connection lost in every state -------------------------------------------------------------


def reach(state: ClientState) -> tuple[Playbook, object]:
    p = Playbook(servers=1)
    a = None
    if state is C.HEAD:
        p.client(b"GET / HT")
    elif state is C.BODY:
        p.client(get("/", "Content-Length: 5\r\n", method="POST") + b"ab")
        a = p.connect()
    elif state is C.MUST_CLOSE:
        p.client(get("/", "Connection: close\r\n"))
        a = p.connect()
    elif state is C.SWITCHING:
        p.client(UPGRADE)
        a = p.connect()
    elif state is C.TUNNEL:
        p.client(UPGRADE)
        a = p.connect()
        p.server(a, SWITCHED)
    elif state is C.HALF_CLOSED:
        p.client(get("/"))
        a = p.connect()
        p.client_eof()
    elif state is C.ERROR:
        p.client(get("/1") + b"BAD\r\n\r\n")
        a = p.connect()
    elif state is C.CLOSED:
        p.client_eof()
    elif state is C.IDLE:
        p.client(get("/"))
        p.connect()
    assert p.core.state is state
    return p, a


@pytest.mark.parametrize("state", list(ClientState))
def test_connection_lost_in_any_state_frees_the_server_side(state: ClientState) -> None:
    p, a = reach(state)
    p.client_lost()
    assert p.core.state is C.CLOSED and p.closed is not None
    if a is not None and state is not C.CLOSED:
        assert p.side_closed(a) is not None  # type: ignore[arg-type]
    assert all(ex.state is ExchangeState.DONE for ex in p.core.queue) and not p.core.queue


def test_connection_lost_while_connecting_cancels_the_connect() -> None:
    p = Playbook(servers=1)
    p.client(get("/1") + get("/2"))
    p.client_lost()
    actions = [a[0] for a in p.actions()]
    assert act.CANCEL_CONNECT in actions
    assert [a for a in p.actions() if a[0] == act.CONNECT] == []


def test_late_connection_for_a_gone_client_is_closed() -> None:
    from fulcrum.proxy.http.core.server import ServerSide

    p = Playbook(servers=1)
    p.client(get("/"))
    (_, ex, backend, owner), = [a for a in p.actions() if a[0] == act.CONNECT]
    p.client_lost()
    side = ServerSide(backend, owner)
    assert not p.core.server_connected(ex, side, p.now)
    assert side.state is ServerState.CLOSED


def test_lost_mid_response_cuts_the_server() -> None:
    p = Playbook(servers=1)
    p.client(get("/"))
    a = p.connect()
    p.server(a, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab")
    p.client_lost()
    assert p.side_closed(a) is True


# -- rules carried from issue 7's fixes ------------------------------------------------------------


def test_connect_tries_are_bounded_by_retries() -> None:
    p = Playbook(servers=5, pool={"retries": 1})
    p.client(get("/x"))
    p.refuse()
    p.refuse()  # the first server and one more: then 503
    assert p.connects() == 0 and status_of(p.to_client()) == 503
    assert p.svc.records == [(503, "connect_failed")]


def test_retry_after_a_reset_counts_against_retries() -> None:
    p = Playbook(servers=2, pool={"retries": 0})
    p.client(get("/x"))
    a = p.connect()
    p.server_eof(a)
    assert p.connects() == 0 and status_of(p.to_client()) == 502
    assert p.svc.records == [(502, "server_abort")]


@pytest.mark.parametrize("host", ["a@b", "a b", "a, b"])
def test_invalid_host_is_400(host: str) -> None:
    p = Playbook()
    p.client(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    assert status_of(p.to_client()) == 400 and p.connects() == 0


def test_absolute_form_is_sent_in_origin_form_with_its_authority_as_host() -> None:
    p = Playbook(servers=1)
    p.client(b"GET http://other.example/x?y HTTP/1.1\r\nHost: a\r\n\r\n")
    a = p.connect()
    assert p.to_server(a) == b"GET /x?y HTTP/1.1\r\nHost: other.example\r\n\r\n"


def test_drain_with_a_pipelined_request_closes_after_the_last() -> None:
    p = Playbook(servers=1)
    p.client(get("/1") + get("/2"))
    a = p.connect()
    p.drain()
    p.server(a, OK)
    assert p.to_client() == OK  # a later request has begun: it is answered too
    p.server(a, OK)
    assert p.to_client() == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    assert p.closed is False


def test_each_request_is_recorded_once_with_its_outcome() -> None:
    p = Playbook(servers=1)
    p.client(get("/1"))
    a = p.connect()
    p.server(a, OK)
    p.client(b"GET /2 HTTP/1.1\r\n\r\n")  # no Host
    assert p.svc.records == [(200, ""), (400, "rejected")]
    q = Playbook()
    q.wait(11)  # nothing ever came
    assert q.svc.records == [(-1, "before a request")]


def test_our_own_descriptor_shortage_blames_no_server_and_waits() -> None:
    # issue 7 item 7: EMFILE on connect is not the server's failure
    p = Playbook(servers=2)
    p.client(get("/x"))
    p.short()
    assert p.connects() == 0  # no other server at once: tried again shortly
    assert all(b.failures == 0 and not b.blacklisted_until for b in p.svc.pool.backends)
    p.retry_connect()
    a = p.connect()
    p.server(a, OK)
    assert p.to_client() == OK
    q = Playbook(servers=1)
    q.client(get("/x"))
    for _ in range(3):
        q.short(give_up_after=0.25)
        if q.closed is not None:
            break
        q.retry_connect()
    assert status_of(q.to_client()) == 503 and q.svc.records == [(503, "limit")]
