"""The rise/fall health counter of one server. Pure: no clock, no I/O.

This is HAProxy's `check->health`: one integer clamped to 0..rise+fall-1.
  - down zone 0..rise-1: a success adds one; reaching `rise` jumps to the top
    (up); a failure drops to 0 (the run of successes is broken).
  - up zone rise..rise+fall-1: a success jumps back to the top (the run of
    failures is broken); a failure takes one; going below `rise` drops to 0
    (down).
So a server comes up after `rise` consecutive successes and goes down after
`fall` consecutive failures, and one odd result never flips it.

Whether the server is up is decided by the transition table below; the counter
only classifies each result into an event. The two must agree, and the table
raises on a combination that cannot happen, so a bug in the arithmetic shows
up as an error instead of a silently wrong state.

Initial states, as HAProxy's `init-state`:
  - "up" (the default): up on probation, the counter at `rise`. Traffic flows
    from the start (as with pen, which has no checks at all), and the first
    failed check takes a dead server out at once instead of after `fall`
    intervals of refused clients.
  - "fully-up": up with a full counter; `fall` failures are needed.
  - "down": down on probation; the first success brings it up.
  - "fully-down": down with an empty counter; `rise` successes are needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Literal

InitialState = Literal["up", "fully-up", "down", "fully-down"]
INITIAL_STATES: tuple[InitialState, ...] = ("up", "fully-up", "down", "fully-down")


class State(Enum):
    UP = "up"
    DOWN = "down"


class Event(Enum):
    SUCCESS = "success"  # a success that does not complete a rise
    FAILURE = "failure"  # a failure that does not complete a fall
    RISE = "rise"  # the success that completes `rise` in a row
    FALL = "fall"  # the failure that completes `fall` in a row
    READMIT = "readmit"  # no active check can bring it back: let traffic try again


class IllegalTransition(RuntimeError):
    """The counter produced an event the current state cannot take."""


TRANSITIONS: dict[tuple[State, Event], State] = {
    (State.DOWN, Event.SUCCESS): State.DOWN,  # rising, not there yet
    (State.DOWN, Event.FAILURE): State.DOWN,  # the run of successes starts over
    (State.DOWN, Event.RISE): State.UP,
    (State.DOWN, Event.READMIT): State.UP,
    (State.UP, Event.SUCCESS): State.UP,  # the run of failures starts over
    (State.UP, Event.FAILURE): State.UP,  # failing, not there yet
    (State.UP, Event.FALL): State.DOWN,
    # (UP, RISE), (UP, READMIT) and (DOWN, FALL) are illegal.
}


def next_state(state: State, event: Event) -> State:
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition(f"health: no transition from {state.value} on {event.value}") from None


@dataclass(frozen=True)
class Transition:
    old: State
    new: State
    reason: str  # what the last check said, e.g. "connect refused"
    detail: str  # how the counter got there, e.g. "3/3 failures"


class HealthCounter:
    def __init__(self, rise: int, fall: int, initial: InitialState = "up"):
        if rise < 1 or fall < 1:
            raise ValueError("rise and fall must be at least 1")
        if initial not in INITIAL_STATES:
            raise ValueError(f"initial state must be one of {', '.join(INITIAL_STATES)}")
        self.rise = rise
        self.fall = fall
        self.state = State.UP if initial in ("up", "fully-up") else State.DOWN
        self.health = {"up": rise, "fully-up": self.top, "down": rise - 1, "fully-down": 0}[initial]
        self.streak = 0  # results in a row that agree with the last one
        self.last_ok: bool | None = None

    @property
    def top(self) -> int:
        return self.rise + self.fall - 1

    @property
    def up(self) -> bool:
        return self.state is State.UP

    def record(self, ok: bool, reason: str) -> Transition | None:
        """Count one check result; return the transition if up/down flipped."""
        self.streak = self.streak + 1 if ok == self.last_ok else 1
        self.last_ok = ok
        if ok:
            event = Event.RISE if self.health == self.rise - 1 else Event.SUCCESS
            self.health = self.top if self.health + 1 >= self.rise else self.health + 1
        else:
            event = Event.FALL if self.health == self.rise else Event.FAILURE
            self.health = 0 if self.health - 1 < self.rise else self.health - 1
        return self._fire(event, reason, ok)

    def readmit(self, reason: str) -> Transition | None:
        """Put a down server back on probation (up; the next failure takes it
        out again). For pools with no active check, where nothing else could."""
        if self.up:
            return None
        self.health = self.rise
        self.streak, self.last_ok = 0, None
        return self._fire(Event.READMIT, reason, None)

    def resized(self, rise: int, fall: int) -> HealthCounter:
        """The same server under new rise/fall settings (a reload): keep the
        state and the run of results so far, clamped to the new limits."""
        fresh = HealthCounter(rise, fall, "fully-up" if self.up else "fully-down")
        if self.up:
            failures = self.top - self.health
            fresh.health = max(rise, fresh.top - failures)
        else:
            fresh.health = min(self.health, rise - 1)
        fresh.streak, fresh.last_ok = self.streak, self.last_ok
        return fresh

    def _fire(self, event: Event, reason: str, ok: bool | None) -> Transition | None:
        old = self.state
        self.state = next_state(old, event)
        if self.state is old:
            return None
        return Transition(old, self.state, reason, self._detail(ok))

    def _detail(self, ok: bool | None) -> str:
        if ok is None:  # readmitted, not counted
            return "on probation"
        need, word = (self.rise, "successes") if ok else (self.fall, "failures")
        text = f"{min(self.streak, need)}/{need} {word}"
        if self.streak < need:  # flipped early: the counter started on probation
            text += ", on probation"
        return text

    def __repr__(self) -> str:
        return f"HealthCounter({self.state.value}, {self.health}/{self.top}, rise={self.rise}, fall={self.fall})"
