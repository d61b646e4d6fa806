"""The rise/fall counter: sequences, clamping, the transition table, flapping."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fulcrum.health.counter import (
    TRANSITIONS,
    Event,
    HealthCounter,
    IllegalTransition,
    State,
    next_state,
)


def feed(counter: HealthCounter, results: str) -> list[tuple[str, str]]:
    """Feed 'ssf..' (s = success, f = failure); return the flips as (new state, detail)."""
    flips = []
    for char in results:
        transition = counter.record(char == "s", "probe")
        if transition is not None:
            flips.append((transition.new.value, transition.detail))
    return flips


def test_fully_up_goes_down_after_exactly_fall_failures():
    counter = HealthCounter(rise=2, fall=3, initial="fully-up")
    assert feed(counter, "ff") == []
    assert counter.up
    assert feed(counter, "f") == [("down", "3/3 failures")]
    assert not counter.up


def test_fully_down_comes_up_after_exactly_rise_successes():
    counter = HealthCounter(rise=2, fall=3, initial="fully-down")
    assert feed(counter, "s") == []
    assert feed(counter, "s") == [("up", "2/2 successes")]


def test_a_success_breaks_a_run_of_failures():
    counter = HealthCounter(rise=2, fall=3, initial="fully-up")
    assert feed(counter, "ffsff") == []
    assert counter.up
    assert feed(counter, "f") == [("down", "3/3 failures")]


def test_a_failure_breaks_a_run_of_successes():
    counter = HealthCounter(rise=3, fall=2, initial="fully-down")
    assert feed(counter, "ssfss") == []
    assert not counter.up
    assert feed(counter, "s") == [("up", "3/3 successes")]


def test_default_initial_state_is_up_on_probation():
    counter = HealthCounter(rise=2, fall=3)
    assert counter.up
    assert feed(counter, "f") == [("down", "1/3 failures, on probation")]


def test_up_on_probation_becomes_fully_up_after_one_success():
    counter = HealthCounter(rise=2, fall=3)
    feed(counter, "s")
    assert feed(counter, "ff") == []
    assert feed(counter, "f") == [("down", "3/3 failures")]


def test_down_on_probation_comes_up_after_one_success():
    counter = HealthCounter(rise=4, fall=2, initial="down")
    assert not counter.up
    assert feed(counter, "s") == [("up", "1/4 successes, on probation")]


def test_transition_carries_old_new_and_reason():
    counter = HealthCounter(rise=1, fall=1, initial="fully-up")
    transition = counter.record(False, "connect refused")
    assert transition is not None
    assert (transition.old, transition.new, transition.reason) == (State.UP, State.DOWN, "connect refused")
    assert counter.record(False, "connect refused") is None


def test_rise_and_fall_of_one_flip_on_every_change():
    counter = HealthCounter(rise=1, fall=1, initial="fully-up")
    assert feed(counter, "fsfs") == [("down", "1/1 failures"), ("up", "1/1 successes"),
                                     ("down", "1/1 failures"), ("up", "1/1 successes")]


def test_flapping_server_alternating_never_flips_with_rise_and_fall_above_one():
    counter = HealthCounter(rise=2, fall=2, initial="fully-up")
    assert feed(counter, "fs" * 50) == []
    assert counter.up
    down = HealthCounter(rise=2, fall=2, initial="fully-down")
    assert feed(down, "sf" * 50) == []
    assert not down.up


def test_flapping_with_runs_flips_once_per_completed_run():
    counter = HealthCounter(rise=2, fall=2, initial="fully-up")
    assert [state for state, _ in feed(counter, "ffssffss")] == ["down", "up", "down", "up"]


def test_readmit_puts_a_down_server_back_on_probation():
    counter = HealthCounter(rise=3, fall=3, initial="fully-up")
    feed(counter, "fff")
    transition = counter.readmit("retry after 2s")
    assert transition is not None and transition.new is State.UP
    assert counter.readmit("again") is None  # already up: nothing to do
    assert feed(counter, "f") == [("down", "1/3 failures, on probation")]


@given(rise=st.integers(1, 6), fall=st.integers(1, 6),
       initial=st.sampled_from(["up", "fully-up", "down", "fully-down"]),
       results=st.lists(st.booleans(), max_size=60))
def test_counter_stays_clamped_and_state_agrees_with_the_counter(rise, fall, initial, results):
    counter = HealthCounter(rise, fall, initial)
    for ok in results:
        counter.record(ok, "x")
        assert 0 <= counter.health <= rise + fall - 1
        assert counter.up == (counter.health >= rise)


@given(rise=st.integers(1, 6), fall=st.integers(1, 6), results=st.lists(st.booleans(), max_size=60))
def test_flips_happen_exactly_at_rise_or_fall_results_in_a_row(rise, fall, results):
    counter = HealthCounter(rise, fall, "fully-up")
    run_ok, run = None, 0
    for ok in results:
        run = run + 1 if ok == run_ok else 1
        run_ok = ok
        was_up = counter.up
        flipped = counter.record(ok, "x") is not None
        if ok:
            assert flipped == (not was_up and run == rise)
        else:
            assert flipped == (was_up and run == fall)


@pytest.mark.parametrize("state,event", [(State.UP, Event.RISE), (State.DOWN, Event.FALL),
                                         (State.UP, Event.READMIT)])
def test_table_rejects_impossible_transitions(state, event):
    with pytest.raises(IllegalTransition, match=f"from {state.value} on {event.value}"):
        next_state(state, event)


def test_table_covers_every_other_pair():
    legal = {(s, e) for s in State for e in Event} - {
        (State.UP, Event.RISE), (State.DOWN, Event.FALL), (State.UP, Event.READMIT)}
    assert set(TRANSITIONS) == legal


def test_corrupted_counter_raises_instead_of_flipping_silently():
    counter = HealthCounter(rise=2, fall=2, initial="fully-up")
    counter.health = 1  # impossible while up: the next success would be a RISE
    with pytest.raises(IllegalTransition):
        counter.record(True, "x")


def test_resized_keeps_state_and_clamps_the_run():
    up = HealthCounter(rise=2, fall=5, initial="fully-up")
    feed(up, "ffff")  # 4 failures in a row, still up
    smaller = up.resized(rise=2, fall=3)
    assert smaller.up
    assert feed(smaller, "f") == [("down", "3/3 failures")]
    down = HealthCounter(rise=5, fall=2, initial="fully-down")
    feed(down, "ssss")
    assert not down.resized(rise=3, fall=2).up
    assert feed(down.resized(rise=3, fall=2), "s")[0][0] == "up"


@pytest.mark.parametrize("kwargs", [{"rise": 0, "fall": 1}, {"rise": 1, "fall": 0},
                                    {"rise": 1, "fall": 1, "initial": "unknown"}])
def test_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        HealthCounter(**kwargs)
