"""The HTTP/1.1 proxy connection as three state machines, written as transition tables.

A client connection reads requests (`ClientState`), each request is one exchange from its head
to the end of its response (`ExchangeState`), and each server connection (`ServerState`)
carries one exchange at a time between idle spells in the pool. Every move the proxy makes goes through `move()`, which
looks the (state, event) pair up in the side's table and raises `IllegalTransition` when the
table has no entry: a bug shows up as an exception at the move that should not happen, not as
a connection quietly out of step. The rule beside each entry says why the move is legal
(RFC 9110 / RFC 9112 sections), in the style of python-hyper/h11's `_state.py`.

The states are `StrEnum`s so that the table lookups hash cached strings (an `Enum`'s hash is
a Python-level call); their values are unique across the three machines.

`docs/http.md` holds the diagrams `diagram()` renders; a unit test keeps them equal."""

from __future__ import annotations

import enum
from typing import Generic, NamedTuple, TypeVar


class IllegalTransition(RuntimeError):
    """An event arrived in a state whose table has no entry for it."""


class ClientState(enum.StrEnum):
    """What the proxy is reading from the client."""

    IDLE = "client-idle"  # between requests: the next head may begin
    HEAD = "client-head"  # a request head is arriving
    BODY = "client-body"  # a request body is arriving (or a bodiless request is being closed)
    MUST_CLOSE = "client-must-close"  # the last request is read; nothing after it is
    SWITCHING = "client-switching"  # an Upgrade request is read; what follows waits for the answer
    TUNNEL = "client-tunnel"  # after a 101: bytes both ways, no HTTP
    HALF_CLOSED = "client-half-closed"  # the client sent FIN: answer what is queued, then close
    ERROR = "client-error"  # bad input: answer what is due, then the rejection, then close
    CLOSED = "client-closed"


class ExchangeState(enum.StrEnum):
    """Where one request and its response are."""

    HEAD = "exchange-head"  # its head is arriving
    QUEUED = "exchange-queued"  # head complete, an earlier response is still due
    CONNECTING = "exchange-connecting"  # a server is being chosen or connected
    SENT = "exchange-sent"  # the head went to a server; its response head has not come
    RESPONDING = "exchange-responding"  # the response head went to the client; body streaming
    TUNNEL = "exchange-tunnel"  # the server said 101
    DONE = "exchange-done"


class ServerState(enum.StrEnum):
    """One connection to a server."""

    CONNECTING = "server-connecting"
    BUSY = "server-busy"  # carrying an exchange: request going out, response not begun
    RESPONSE = "server-response"  # a response head arrived; its body is being read
    DONE = "server-done"  # a response ended; kept or closed next
    IDLE = "server-idle"  # in the idle pool
    TUNNEL = "server-tunnel"
    CLOSED = "server-closed"


State = TypeVar("State", "ClientState", "ExchangeState", "ServerState")


class Rule(NamedTuple, Generic[State]):
    to: State
    why: str


# -- the tables: state -> event -> (next state, why) ---------------------------------------

CLIENT: dict[ClientState, dict[str, Rule[ClientState]]] = {
    ClientState.IDLE: {
        "begin": Rule(ClientState.HEAD, "a request begins (RFC 9112 §2.1)"),
        "eof": Rule(ClientState.HALF_CLOSED, "FIN between requests: answer what is queued (RFC 9112 §9.6)"),
        "head-timeout": Rule(ClientState.ERROR, "408: no request arrived in time after the connection opened (slowloris)"),
        "keepalive-timeout": Rule(ClientState.CLOSED, "idle keep-alive connection closed (RFC 9112 §9.8)"),
        "drain": Rule(ClientState.CLOSED, "graceful stop: an idle connection closes at once (RFC 9112 §9.6)"),
        "reject": Rule(ClientState.ERROR, "bytes that are not a request (RFC 9112 §2.2)"),
        "close": Rule(ClientState.CLOSED, "the last answer went out with Connection: close (RFC 9112 §9.6)"),
        "lost": Rule(ClientState.CLOSED, "connection lost"),
    },
    ClientState.HEAD: {
        "head-done": Rule(ClientState.BODY, "the head is complete; its body (maybe empty) follows (RFC 9112 §6)"),
        "reject": Rule(ClientState.ERROR, "a head that breaks a rule: 4xx and close (RFC 9112 §2.2, §3, §5)"),
        "head-timeout": Rule(ClientState.ERROR, "408: the head did not arrive in time (RFC 9110 §15.5.9)"),
        "eof": Rule(ClientState.HALF_CLOSED, "FIN inside a head: the partial request is dropped"),
        "close": Rule(ClientState.CLOSED, "an earlier answer went out with Connection: close (RFC 9112 §9.6)"),
        "lost": Rule(ClientState.CLOSED, "connection lost"),
    },
    ClientState.BODY: {
        "end": Rule(ClientState.IDLE, "the request ended; the next may follow (RFC 9112 §9.3.2 pipelining)"),
        "end-last": Rule(ClientState.MUST_CLOSE, "Connection: close or HTTP/1.0: nothing after it is read (RFC 9112 §9.6)"),
        "end-upgrade": Rule(ClientState.SWITCHING, "Upgrade: nothing after it is forwarded before the 101 (RFC 9110 §7.8)"),
        "reject": Rule(ClientState.ERROR, "a bad body framing: 400 and close (RFC 9112 §7.1)"),
        "body-timeout": Rule(ClientState.ERROR, "408: the body stalled (RFC 9110 §15.5.9)"),
        "eof": Rule(ClientState.HALF_CLOSED, "FIN inside a body: the upload and its server side are aborted; earlier answers still go out (RFC 9112 §8)"),
        "close": Rule(ClientState.CLOSED, "answered (e.g. 503) before the body ended: Connection: close (RFC 9112 §9.6)"),
        "lost": Rule(ClientState.CLOSED, "connection lost"),
    },
    ClientState.SWITCHING: {
        "upgraded": Rule(ClientState.TUNNEL, "101: the connection now speaks the new protocol (RFC 9110 §15.2.2)"),
        "declined": Rule(ClientState.IDLE, "the server answered without 101: what follows is the next request (RFC 9110 §7.8)"),
        "eof": Rule(ClientState.SWITCHING, "FIN after the Upgrade request: passed on after a 101, else close after the answer"),
        "close": Rule(ClientState.CLOSED, "the upgrade was answered by the proxy (503) or the client sent FIN"),
        "lost": Rule(ClientState.CLOSED, "connection lost"),
    },
    ClientState.MUST_CLOSE: {
        "eof": Rule(ClientState.MUST_CLOSE, "FIN after the last request changes nothing"),
        "close": Rule(ClientState.CLOSED, "the last response is out (RFC 9112 §9.6)"),
        "lost": Rule(ClientState.CLOSED, "connection lost"),
    },
    ClientState.HALF_CLOSED: {
        "eof": Rule(ClientState.HALF_CLOSED, "a second FIN (TLS close_notify then TCP FIN)"),
        "close": Rule(ClientState.CLOSED, "every queued answer is out"),
        "lost": Rule(ClientState.CLOSED, "connection lost"),
    },
    ClientState.ERROR: {
        "eof": Rule(ClientState.ERROR, "FIN after bad input changes nothing"),
        "close": Rule(ClientState.CLOSED, "the rejection is out: close (RFC 9112 §9.6)"),
        "lost": Rule(ClientState.CLOSED, "connection lost"),
    },
    ClientState.TUNNEL: {
        "eof": Rule(ClientState.TUNNEL, "half-close passed on to the server"),
        "close": Rule(ClientState.CLOSED, "the server side of the tunnel ended"),
        "lost": Rule(ClientState.CLOSED, "connection lost"),
    },
    ClientState.CLOSED: {
        "close": Rule(ClientState.CLOSED, "closing twice is a no-op"),
        "lost": Rule(ClientState.CLOSED, "connection lost after close"),
        "eof": Rule(ClientState.CLOSED, "FIN after close"),
    },
}

EXCHANGE: dict[ExchangeState, dict[str, Rule[ExchangeState]]] = {
    ExchangeState.HEAD: {
        "dispatch": Rule(ExchangeState.CONNECTING, "first in line: choose a server (RFC 9112 §9.3.2)"),
        "wait": Rule(ExchangeState.QUEUED, "an earlier response is due first (RFC 9112 §9.3.2)"),
        "cancel": Rule(ExchangeState.DONE, "the head was rejected or the client left"),
    },
    ExchangeState.QUEUED: {
        "dispatch": Rule(ExchangeState.CONNECTING, "its turn came (RFC 9112 §9.3.2)"),
        "cancel": Rule(ExchangeState.DONE, "the client left"),
    },
    ExchangeState.CONNECTING: {
        "sent": Rule(ExchangeState.SENT, "a server connection took the head"),
        "short": Rule(ExchangeState.CONNECTING, "our own descriptors ran out: no server is blamed; tried again shortly (issue 7 item 7)"),
        "connect-failed": Rule(ExchangeState.CONNECTING, "nothing was sent: any request may go elsewhere (RFC 9110 §9.2.2 does not apply)"),
        "answer": Rule(ExchangeState.DONE, "no server: 503 (RFC 9110 §15.6.4), 502 after a failed retry, or a redirect"),
        "cancel": Rule(ExchangeState.DONE, "the client left or its request was rejected"),
    },
    ExchangeState.SENT: {
        "response": Rule(ExchangeState.RESPONDING, "a final response head (RFC 9110 §15)"),
        "interim": Rule(ExchangeState.SENT, "1xx: the final response is still due (RFC 9110 §15.2)"),
        "upgraded": Rule(ExchangeState.TUNNEL, "101 to an Upgrade request (RFC 9110 §15.2.2)"),
        "retry": Rule(ExchangeState.CONNECTING, "reset before any response byte: idempotent, no body, once (RFC 9110 §9.2.2, RFC 9112 §9.3.1)"),
        "answer": Rule(ExchangeState.DONE, "the server failed before answering: 502, or 504 on timeout (RFC 9110 §15.6.3, §15.6.5)"),
        "cancel": Rule(ExchangeState.DONE, "the client left or its request was rejected"),
    },
    ExchangeState.RESPONDING: {
        "end": Rule(ExchangeState.DONE, "the response ended (RFC 9112 §6.3)"),
        "abort": Rule(ExchangeState.DONE, "the server failed mid-response: the client sees a cut, not an end (RFC 9112 §8)"),
        "cancel": Rule(ExchangeState.DONE, "the client left"),
    },
    ExchangeState.TUNNEL: {
        "end": Rule(ExchangeState.DONE, "one side of the tunnel closed"),
        "cancel": Rule(ExchangeState.DONE, "the client left"),
    },
    ExchangeState.DONE: {},
}

SERVER: dict[ServerState, dict[str, Rule[ServerState]]] = {
    ServerState.CONNECTING: {
        "connected": Rule(ServerState.BUSY, "connected: the request head goes first"),
        "close": Rule(ServerState.CLOSED, "connect failed or no longer wanted"),
    },
    ServerState.BUSY: {
        "response": Rule(ServerState.RESPONSE, "a response head arrived (RFC 9112 §4)"),
        "interim": Rule(ServerState.BUSY, "1xx: a final response follows (RFC 9110 §15.2)"),
        "upgraded": Rule(ServerState.TUNNEL, "101 (RFC 9110 §15.2.2)"),
        "close": Rule(ServerState.CLOSED, "failed, reset, timed out, or the request was abandoned"),
    },
    ServerState.RESPONSE: {
        "end": Rule(ServerState.DONE, "the response is complete (RFC 9112 §6.3)"),
        "close": Rule(ServerState.CLOSED, "failed or abandoned mid-response"),
    },
    ServerState.DONE: {
        "reuse": Rule(ServerState.IDLE, "persistent and nothing unread: back to the pool (RFC 9112 §9.3)"),
        "close": Rule(ServerState.CLOSED, "not persistent, bytes after the response, HEAD, or a declined upgrade (RFC 9112 §9.3, §9.6)"),
    },
    ServerState.IDLE: {
        "take": Rule(ServerState.BUSY, "reused for the next request (RFC 9112 §9.3)"),
        "close": Rule(ServerState.CLOSED, "bytes or FIN while idle, or idle too long (RFC 9112 §9.3.1)"),
    },
    ServerState.TUNNEL: {
        "close": Rule(ServerState.CLOSED, "the tunnel ended"),
    },
    ServerState.CLOSED: {},
}

TABLES: dict[str, dict] = {"client": CLIENT, "exchange": EXCHANGE, "server": SERVER}  # type: ignore[type-arg]


Next = TypeVar("Next", bound=enum.StrEnum)


class Moves(dict[str, Next]):
    """One state's moves, event -> next state, compiled from a table for the hot path: a
    lookup of an event the state does not allow raises IllegalTransition (`__missing__` is
    only consulted on a miss, so a legal move costs one dict lookup, no call)."""

    __slots__ = ("state",)

    def __init__(self, state: Next, moves: dict[str, Next]):
        super().__init__(moves)
        self.state = state

    def __missing__(self, event: str) -> Next:
        raise IllegalTransition(f"{event!r} in state {self.state.value}")


def compiled(table: dict[State, dict[str, Rule[State]]]) -> dict[State, Moves[State]]:
    return {state: Moves(state, {event: rule.to for event, rule in rules.items()})
            for state, rules in table.items()}


# The tables as the core reads them: `CLIENT_NEXT[state][event]` is the next state.
CLIENT_NEXT = compiled(CLIENT)
EXCHANGE_NEXT = compiled(EXCHANGE)
SERVER_NEXT = compiled(SERVER)


def move(table: dict[State, dict[str, Rule[State]]], state: State, event: str) -> State:
    """The state after `event`; raises IllegalTransition when the table has no such move."""
    rule = table[state].get(event)
    if rule is None:
        raise IllegalTransition(f"{event!r} in state {state.value}")
    return rule.to


TITLES = {"client": "The client side (`ClientState`)", "exchange": "One request (`ExchangeState`)",
          "server": "A server connection (`ServerState`)"}


def diagram(name: str) -> str:
    """A Mermaid state diagram of one table. `lost` (the connection dropped), which every
    client state has, is left out of the picture; the rule table lists it."""
    lines = ["stateDiagram-v2"]
    for state, rules in TABLES[name].items():
        for event, rule in rules.items():
            if event != "lost":
                lines.append(f"    {state.name} --> {rule.to.name}: {event}")
    return "\n".join(lines)


def rules_table(name: str) -> str:
    lines = ["| state | event | next | rule |", "|---|---|---|---|"]
    for state, rules in TABLES[name].items():
        for event, rule in rules.items():
            lines.append(f"| {state.name} | `{event}` | {rule.to.name} | {rule.why} |")
    return "\n".join(lines)


def docs_section() -> str:
    """The state machines as docs/http.md shows them (a unit test keeps the two equal);
    `python -m fulcrum.proxy.http.core.states` prints it."""
    parts = []
    for name, title in TITLES.items():
        parts.append(f"### {title}\n\n```mermaid\n{diagram(name)}\n```\n\n{rules_table(name)}\n")
    return "\n".join(parts)


if __name__ == "__main__":
    print(docs_section(), end="")
