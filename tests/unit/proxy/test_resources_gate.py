"""The accept gate (proxy/resources.py): pause every listener on a shortage, resume when a
connection is released, log at most once per interval."""

from __future__ import annotations

import asyncio
import errno
import logging

import pytest

from fulcrum.proxy.resources import LOG_INTERVAL, AcceptGate, local_exhaustion


class FakeListener:
    def __init__(self, can_resume: bool = True):
        self.accepting, self.can_resume = True, can_resume

    def pause_accepting(self) -> None:
        self.accepting = False

    def resume_accepting(self) -> bool:
        if self.can_resume:
            self.accepting = True
        return self.can_resume


@pytest.mark.parametrize(("code", "connecting", "local"), [
    (errno.EMFILE, True, True), (errno.ENFILE, False, True), (errno.ENOBUFS, True, True),
    (errno.ENOMEM, True, True), (errno.EADDRNOTAVAIL, True, True), (errno.EADDRNOTAVAIL, False, False),
    (errno.ECONNREFUSED, True, False), (errno.ETIMEDOUT, True, False), (errno.EHOSTUNREACH, True, False),
])
def test_only_our_own_shortages_are_local(code: int, connecting: bool, local: bool) -> None:
    assert (local_exhaustion(OSError(code, "x"), connecting) is not None) is local
    assert local_exhaustion(TimeoutError(), connecting) is None or code == errno.ETIMEDOUT


def test_a_shortage_pauses_every_listener_and_a_release_resumes_them() -> None:
    async def scenario() -> None:
        gate = AcceptGate()
        listeners = [FakeListener(), FakeListener()]
        for listener in listeners:
            gate.register(listener)
        gate.exhausted("too many open files", "connecting")
        assert gate.paused and not any(listener.accepting for listener in listeners)
        gate.released()
        await asyncio.sleep(0)  # the next loop iteration: the closed descriptors are gone
        await asyncio.sleep(0)
        assert not gate.paused and all(listener.accepting for listener in listeners)

    asyncio.run(scenario())


def test_when_still_short_the_gate_tries_again_later() -> None:
    async def scenario() -> None:
        gate = AcceptGate()
        stuck = FakeListener(can_resume=False)
        gate.register(stuck)
        gate.exhausted("too many open files", "accepting")
        gate.released()
        await asyncio.sleep(0.01)
        assert gate.paused
        stuck.can_resume = True
        await asyncio.sleep(0.4)  # the fallback timer, without any release
        assert not gate.paused and stuck.accepting

    asyncio.run(scenario())


def test_shortages_are_logged_at_most_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    gate = AcceptGate(clock=lambda: now[0])
    with caplog.at_level(logging.ERROR, "fulcrum.resources"):
        for _ in range(50):
            gate.exhausted("too many open files", "connecting")
        now[0] += LOG_INTERVAL
        gate.exhausted("too many open files", "connecting")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "(49 more since the last report)" in lines[1]
