"""The transition tables of the HTTP core: an illegal move raises, every rule is taken by a
playbook (so a playbook fails if the rule is removed), and docs/http.md shows the tables."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest
import test_core_playbooks as playbooks

from fulcrum.proxy.http.core import connection, server, states
from fulcrum.proxy.http.core.states import (
    CLIENT,
    SERVER,
    ClientState,
    IllegalTransition,
    ServerState,
)

DOC = Path(__file__).resolve().parents[3] / "docs" / "http.md"


def test_an_illegal_move_raises() -> None:
    with pytest.raises(IllegalTransition, match="'end' in state client-idle"):
        states.move(CLIENT, ClientState.IDLE, "end")
    with pytest.raises(IllegalTransition, match="'end' in state client-idle"):
        states.CLIENT_NEXT[ClientState.IDLE]["end"]  # the compiled table the core reads
    with pytest.raises(IllegalTransition):
        states.move(SERVER, ServerState.IDLE, "response")  # a response on an idle connection


def test_an_illegal_move_inside_the_core_is_an_internal_error(caplog: pytest.LogCaptureFixture) -> None:
    p = playbooks.Playbook(servers=1)
    p.client(playbooks.get("/", method="POST"))
    side = p.connect()
    side.state = ServerState.IDLE  # pretend it were idle: a response now is out of step
    p.server(side, playbooks.OK)
    assert "internal error" in caplog.text and "'response' in state server-idle" in caplog.text
    assert p.to_client().startswith(b"HTTP/1.1 502 ") and p.closed is False


def playbook_calls() -> Iterator[tuple[str, object, dict[str, object]]]:
    for name, fn in inspect.getmembers(playbooks, inspect.isfunction):
        if not name.startswith("test_"):
            continue
        marks = [m for m in getattr(fn, "pytestmark", []) if m.name == "parametrize"]
        if not marks:
            yield name, fn, {}
            continue
        (argname, values), = [m.args for m in marks]
        for value in values:
            yield name, fn, {argname: value}


def test_every_rule_is_taken_by_some_playbook(monkeypatch: pytest.MonkeyPatch) -> None:
    taken: set[tuple[str, str]] = set()

    class RecordingMoves(states.Moves):  # type: ignore[type-arg]
        def __getitem__(self, event: str):  # type: ignore[no-untyped-def]
            taken.add((self.state.value, event))
            return super().__getitem__(event)

    for name in ("CLIENT", "EXCHANGE", "SERVER"):
        table = getattr(states, name)
        recorded = {state: RecordingMoves(state, {e: r.to for e, r in rules.items()}) for state, rules in table.items()}
        monkeypatch.setattr(connection, f"{name}_NEXT", recorded)
        if name == "SERVER":
            monkeypatch.setattr(server, "SERVER_NEXT", recorded)
    for _, fn, kwargs in playbook_calls():
        fn(**kwargs)  # type: ignore[operator]
    rules = {(state.value, event) for table in states.TABLES.values()
             for state, moves in table.items() for event in moves}
    missing = sorted(rules - taken)
    assert not missing, f"rules no playbook takes: {missing}"


def test_docs_show_the_tables_as_they_are() -> None:
    assert states.docs_section() in DOC.read_text(), (
        "docs/http.md is out of date: paste `python -m fulcrum.proxy.http.core.states`")
