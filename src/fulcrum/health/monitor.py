"""Runs the health probes of every pool and feeds the counters.

One task per server probes it every `interval`; the first probes are spread
at random over one interval and every later wait is jittered by ±10%, so a
pool's servers are not all probed in the same instant (nor fall back into
step after the loop stalls). A result goes into the server's `HealthCounter`;
when the counter flips, the monitor tells the pool (`set_healthy`) and logs one
line on "fulcrum.health":

    pool web server 127.0.0.1:9001 is DOWN (connect refused, 3/3 failures)

Passive checks: the proxy reports connects of real traffic. A failed connect
counts as a failure when the pool's `health.passive` is on; a good connect
counts as a success only while the server is up and failing (it breaks the
run of failures, as a good probe would; a down server gets no traffic, its
probes bring it back).

`kind = "none"`: nothing is probed and servers start up. Passive failures can
still take a server down; since no probe could bring it back, it is readmitted
on probation after `interval` (the next failure takes it out again), as pen
retries a blacklisted server.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from fulcrum.balance.base import Backend
from fulcrum.balance.pool import PoolRuntime
from fulcrum.config.model import HealthCheck
from fulcrum.config.types import format_duration
from fulcrum.health.counter import HealthCounter, InitialState, State, Transition
from fulcrum.health.probes import Probe, run_probe

log = logging.getLogger("fulcrum.health")

JITTER = 0.1  # each wait is interval * (1 ± JITTER)


@dataclass(eq=False)
class _Watch:
    """One server of one pool under watch."""

    pool_name: str
    label: str  # the server key; the emergency server is marked as such
    pool: PoolRuntime
    backend: Backend
    check: HealthCheck
    counter: HealthCounter
    last_reason: str = ""
    last_check: float | None = None
    last_ok: bool | None = None  # the last result, None before any
    last_duration: float | None = None  # seconds the last active probe took
    last_change: float | None = None  # loop time of the last up/down flip (or of the watch's start)
    task: asyncio.Task[None] | None = None
    readmit: asyncio.TimerHandle | None = None


def _members(pool: PoolRuntime) -> Iterator[tuple[str, Backend]]:
    for backend in pool.backends:
        yield backend.key, backend
    if pool.emergency is not None:
        yield f"{pool.emergency.key} (emergency)", pool.emergency


class HealthMonitor:
    def __init__(self, pools: Mapping[str, PoolRuntime], *, initial: InitialState = "up",
                 probe: Probe = run_probe, rng: random.Random | None = None):
        self._initial = initial
        self._probe = probe
        self._rng = rng or random.Random()
        self._watches: dict[tuple[str, str], _Watch] = {}
        self._by_backend: dict[int, _Watch] = {}  # id(backend): the proxy's fast lookup
        self._stopping: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.update(pools)

    # -- life cycle ----------------------------------------------------------------

    def start(self) -> None:
        """Start probing. Call from inside the running event loop."""
        self._loop = asyncio.get_running_loop()
        for watch in self._watches.values():
            self._run(watch)

    async def stop(self) -> None:
        """Cancel every probe and wait until all of them have ended."""
        for watch in self._watches.values():
            self._halt(watch)
        self._loop = None
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)

    def update(self, pools: Mapping[str, PoolRuntime]) -> None:
        """Adopt reloaded pools. Servers that are still there (same pool name,
        same address:port) keep their counter; new ones start in the initial
        state; probes restart only where the health settings changed."""
        previous, self._watches = self._watches, {}
        for pool_name, pool in pools.items():
            check = pool.config.health
            for label, backend in _members(pool):
                watch = previous.pop((pool_name, label), None)
                if watch is None:
                    counter = HealthCounter(check.rise, check.fall, self._initial)
                    watch = _Watch(pool_name, label, pool, backend, check, counter,
                                   last_change=self._now())
                else:
                    if (watch.counter.rise, watch.counter.fall) != (check.rise, check.fall):
                        watch.counter = watch.counter.resized(check.rise, check.fall)
                    if watch.check != check:
                        self._halt(watch)
                        watch.check = check
                    watch.pool, watch.backend = pool, backend
                pool.set_healthy(backend, watch.counter.up)
                self._watches[(pool_name, label)] = watch
        for gone in previous.values():
            self._halt(gone)
        self._by_backend = {id(w.backend): w for w in self._watches.values()}
        if self._loop is not None:
            for watch in self._watches.values():
                self._run(watch)

    # -- passive checks (called by the proxy) -----------------------------------------

    def passive_failure(self, pool_name: str, backend: Backend, reason: str) -> None:
        watch = self._passive_watch(pool_name, backend)
        if watch is not None:  # marked, so the log says who saw the failure
            self._record(watch, False, f"passive: {reason}")

    def passive_success(self, pool_name: str, backend: Backend) -> None:
        watch = self._passive_watch(pool_name, backend)
        if watch is not None and watch.counter.up and watch.counter.health < watch.counter.top:
            self._record(watch, True, "passive: connect ok")

    def _passive_watch(self, pool_name: str, backend: Backend) -> _Watch | None:
        watch = self._by_backend.get(id(backend))
        if watch is None or watch.pool_name != pool_name or not watch.check.passive:
            return None
        return watch

    # -- status ----------------------------------------------------------------------

    def status(self) -> dict[str, dict[str, dict[str, Any]]]:
        """pool -> server -> {up, counter, counter_max, rise, fall, kind, last_reason, last_check,
        last_ok, last_duration, last_change}. Times are on the event loop's clock (loop.time()),
        None before any result (`last_change`: the last flip, or when the watch began)."""
        report: dict[str, dict[str, dict[str, Any]]] = {}
        for watch in self._watches.values():
            counter = watch.counter
            report.setdefault(watch.pool_name, {})[watch.label] = {
                "up": counter.up, "counter": counter.health, "counter_max": counter.top,
                "rise": counter.rise, "fall": counter.fall, "kind": watch.check.kind,
                "last_reason": watch.last_reason, "last_check": watch.last_check,
                "last_ok": watch.last_ok, "last_duration": watch.last_duration,
                "last_change": watch.last_change,
            }
        return report

    # -- internals -------------------------------------------------------------------

    def _run(self, watch: _Watch) -> None:
        """Make sure whatever should be running for `watch` is running."""
        assert self._loop is not None
        if watch.check.kind != "none":
            if watch.task is None:
                watch.task = self._loop.create_task(
                    self._probe_forever(watch), name=f"health {watch.pool_name} {watch.label}")
        elif not watch.counter.up and watch.readmit is None:
            watch.readmit = self._loop.call_later(watch.check.interval, self._readmit, watch)

    def _halt(self, watch: _Watch) -> None:
        if watch.task is not None:
            watch.task.cancel()
            self._stopping.add(watch.task)
            watch.task.add_done_callback(self._stopping.discard)
            watch.task = None
        if watch.readmit is not None:
            watch.readmit.cancel()
            watch.readmit = None

    async def _probe_forever(self, watch: _Watch) -> None:
        loop = asyncio.get_running_loop()
        check, backend = watch.check, watch.backend
        await asyncio.sleep(self._rng.uniform(0, check.interval))
        while True:
            started = loop.time()
            try:
                ok, reason = await self._probe(check, backend.address, backend.port)
            except Exception as exc:  # a bug in a probe must not end the checks
                log.exception("pool %s server %s: probe error", watch.pool_name, watch.label)
                ok, reason = False, f"probe error: {exc}"
            watch.last_duration = loop.time() - started
            self._record(watch, ok, reason)
            wait = check.interval * self._rng.uniform(1 - JITTER, 1 + JITTER)
            await asyncio.sleep(max(0.0, started + wait - loop.time()))

    def _record(self, watch: _Watch, ok: bool, reason: str) -> None:
        watch.last_reason = reason
        watch.last_check = self._now()
        watch.last_ok = ok
        transition = watch.counter.record(ok, reason)
        if transition is not None:
            self._flip(watch, transition)

    def _readmit(self, watch: _Watch) -> None:
        watch.readmit = None
        reason = f"no active check, retried after {format_duration(watch.check.interval)}"
        transition = watch.counter.readmit(reason)
        if transition is not None:
            watch.last_reason = reason
            self._flip(watch, transition)

    def _flip(self, watch: _Watch, transition: Transition) -> None:
        up = transition.new is State.UP
        watch.last_change = self._now()
        watch.pool.set_healthy(watch.backend, up)
        log.log(logging.INFO if up else logging.WARNING, "pool %s server %s is %s (%s, %s)",
                watch.pool_name, watch.label, "UP" if up else "DOWN",
                transition.reason, transition.detail)
        if not up and self._loop is not None:
            self._run(watch)  # a pool without probes schedules the readmission

    def _now(self) -> float | None:
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:
            return None
