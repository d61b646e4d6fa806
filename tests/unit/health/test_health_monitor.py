"""HealthMonitor with a scripted probe (no sockets): passive checks, kind none,
reloads, status and shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from fulcrum.balance.pool import PoolRuntime
from fulcrum.config.model import HealthCheck, Pool
from fulcrum.health.monitor import HealthMonitor


def run(coro: Awaitable[Any]) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, 10)
    return asyncio.run(bounded())


async def until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"not true within {timeout}s: {what}")
        await asyncio.sleep(0.005)


class ScriptedProbe:
    """Answers each server with whatever the test set last; counts calls."""

    def __init__(self) -> None:
        self.answers: dict[int, tuple[bool, str]] = {}
        self.calls: dict[int, int] = {}

    async def __call__(self, check: HealthCheck, address: str, port: int) -> tuple[bool, str]:
        self.calls[port] = self.calls.get(port, 0) + 1
        return self.answers.get(port, (True, "connect ok"))


def pool(*servers: str, **health: Any) -> PoolRuntime:
    settings = {"interval": "20ms", "timeout": "10ms", "rise": 2, "fall": 2} | health
    return PoolRuntime("web", Pool(servers=list(servers), health=HealthCheck(**settings)))


def test_passive_failures_take_a_server_down_and_log_one_line(caplog):
    web = pool("127.0.0.1:9001", "127.0.0.1:9002", kind="none", fall=3, interval="10s", timeout="1s")
    monitor = HealthMonitor({"web": web}, initial="fully-up")
    first = web.backends[0]
    caplog.set_level(logging.INFO, logger="fulcrum.health")
    for _ in range(2):
        monitor.passive_failure("web", first, "connect refused")
    assert first.healthy
    monitor.passive_failure("web", first, "connect refused")
    assert not first.healthy
    assert web.backends[1].healthy
    assert [r.getMessage() for r in caplog.records] == [
        "pool web server 127.0.0.1:9001 is DOWN (passive: connect refused, 3/3 failures)"]
    assert caplog.records[0].levelno == logging.WARNING


def test_passive_failures_are_ignored_when_passive_is_off():
    web = pool("127.0.0.1:9001", kind="none", passive=False, fall=1, interval="10s", timeout="1s")
    monitor = HealthMonitor({"web": web})
    monitor.passive_failure("web", web.backends[0], "connect refused")
    assert web.backends[0].healthy
    assert monitor.status()["web"]["127.0.0.1:9001"]["last_reason"] == ""


def test_passive_success_breaks_a_run_of_failures():
    web = pool("127.0.0.1:9001", kind="none", fall=2, interval="10s", timeout="1s")
    monitor = HealthMonitor({"web": web}, initial="fully-up")
    backend = web.backends[0]
    monitor.passive_failure("web", backend, "connect refused")
    monitor.passive_success("web", backend)
    monitor.passive_failure("web", backend, "connect refused")
    assert backend.healthy
    monitor.passive_failure("web", backend, "connect refused")
    assert not backend.healthy


def test_passive_reports_for_another_pool_or_unknown_backend_are_ignored():
    web = pool("127.0.0.1:9001", kind="none", fall=1, interval="10s", timeout="1s")
    other = pool("127.0.0.1:9001", kind="none", fall=1, interval="10s", timeout="1s")
    monitor = HealthMonitor({"web": web})
    monitor.passive_failure("api", web.backends[0], "connect refused")
    monitor.passive_failure("web", other.backends[0], "connect refused")
    assert web.backends[0].healthy


def test_kind_none_never_probes_and_readmits_a_passively_failed_server(caplog):
    probe = ScriptedProbe()
    web = pool("127.0.0.1:9001", kind="none", fall=1)
    caplog.set_level(logging.INFO, logger="fulcrum.health")

    async def scenario() -> None:
        monitor = HealthMonitor({"web": web}, probe=probe)
        monitor.start()
        backend = web.backends[0]
        monitor.passive_failure("web", backend, "connect timeout")
        assert not backend.healthy
        await until(lambda: backend.healthy, "readmitted after the interval")
        await monitor.stop()

    run(scenario())
    assert probe.calls == {}
    assert [r.getMessage() for r in caplog.records] == [
        "pool web server 127.0.0.1:9001 is DOWN (passive: connect timeout, 1/1 failures)",
        "pool web server 127.0.0.1:9001 is UP (no active check, retried after 20ms, on probation)"]


def test_probes_drive_the_counter_both_ways():
    probe = ScriptedProbe()
    web = pool("127.0.0.1:9001", "127.0.0.1:9002")

    async def scenario() -> None:
        monitor = HealthMonitor({"web": web}, probe=probe)
        monitor.start()
        down, steady = web.backends
        probe.answers[9001] = (False, "HTTP 500")
        await until(lambda: not down.healthy, "9001 down")
        assert monitor.status()["web"]["127.0.0.1:9001"]["last_reason"] == "HTTP 500"
        probe.answers[9001] = (True, "HTTP 200")
        await until(lambda: down.healthy, "9001 up again")
        assert steady.healthy
        await monitor.stop()

    run(scenario())
    assert probe.calls[9002] >= 2


def test_initial_down_marks_servers_unusable_until_probed():
    probe = ScriptedProbe()
    web = pool("127.0.0.1:9001")

    async def scenario() -> None:
        monitor = HealthMonitor({"web": web}, probe=probe, initial="down")
        assert not web.backends[0].healthy
        monitor.start()
        await until(lambda: web.backends[0].healthy, "up after the first good probe")
        await monitor.stop()

    run(scenario())


def test_the_emergency_server_is_probed_too():
    probe = ScriptedProbe()
    runtime = PoolRuntime("web", Pool(
        servers=["127.0.0.1:9001"], emergency="127.0.0.1:9009",
        health=HealthCheck(interval="20ms", timeout="10ms", rise=1, fall=1)))
    probe.answers[9009] = (False, "connect refused")

    async def scenario() -> dict[str, Any]:
        monitor = HealthMonitor({"web": runtime}, probe=probe)
        monitor.start()
        assert runtime.emergency is not None
        await until(lambda: not runtime.emergency.healthy, "emergency down")
        await monitor.stop()
        return monitor.status()["web"]

    status = run(scenario())
    assert set(status) == {"127.0.0.1:9001", "127.0.0.1:9009 (emergency)"}
    assert status["127.0.0.1:9009 (emergency)"]["up"] is False


def test_update_keeps_counters_of_remaining_servers_and_drops_removed_ones():
    probe = ScriptedProbe()
    old = pool("127.0.0.1:9001", "127.0.0.1:9002")
    probe.answers[9001] = (False, "connect refused")

    async def scenario() -> None:
        monitor = HealthMonitor({"web": old}, probe=probe)
        monitor.start()
        await until(lambda: not old.backends[0].healthy, "9001 down")
        # A reload builds new runtimes: 9002 removed, 9003 added, fall changed.
        new = pool("127.0.0.1:9001", "127.0.0.1:9003", fall=4)
        monitor.update({"web": new})
        assert not new.backends[0].healthy  # 9001 stays down across the reload
        status = monitor.status()["web"]
        assert set(status) == {"127.0.0.1:9001", "127.0.0.1:9003"}
        assert status["127.0.0.1:9001"]["fall"] == 4
        assert status["127.0.0.1:9001"]["last_reason"] == "connect refused"
        calls = probe.calls.get(9003, 0)
        await until(lambda: probe.calls.get(9003, 0) > calls, "9003 probed")
        probe.answers[9001] = (True, "connect ok")
        await until(lambda: new.backends[0].healthy, "9001 up under the new pool")
        def probing(label: str) -> bool:
            return any(t.get_name() == f"health web {label}" for t in asyncio.all_tasks())
        assert probing("127.0.0.1:9001")
        await until(lambda: not probing("127.0.0.1:9002"), "the removed server's probe ended")
        await monitor.stop()
        assert not probing("127.0.0.1:9001")

    run(scenario())


def test_stop_leaves_no_task_behind():
    class SlowProbe(ScriptedProbe):
        async def __call__(self, check: HealthCheck, address: str, port: int) -> tuple[bool, str]:
            await super().__call__(check, address, port)
            await asyncio.sleep(3600)
            return True, "never"

    web = pool("127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003")
    probe = SlowProbe()

    async def scenario() -> set[asyncio.Task[Any]]:
        before = asyncio.all_tasks()
        monitor = HealthMonitor({"web": web}, probe=probe)
        monitor.start()
        assert len(asyncio.all_tasks() - before) == 3
        await until(lambda: len(probe.calls) == 3, "every server's probe in flight")
        monitor.update({"web": pool("127.0.0.1:9001")})  # retires two probes
        await monitor.stop()
        return asyncio.all_tasks() - before

    assert run(scenario()) == set()


def test_a_probe_that_raises_counts_as_a_failure_and_keeps_going(caplog):
    class BuggyProbe(ScriptedProbe):
        async def __call__(self, check: HealthCheck, address: str, port: int) -> tuple[bool, str]:
            await super().__call__(check, address, port)
            raise KeyError("oops")

    probe = BuggyProbe()
    web = pool("127.0.0.1:9001", fall=1)

    async def scenario() -> None:
        monitor = HealthMonitor({"web": web}, probe=probe)
        monitor.start()
        await until(lambda: probe.calls.get(9001, 0) >= 3, "probed again after errors")
        await monitor.stop()

    with caplog.at_level(logging.ERROR, logger="fulcrum.health"):
        run(scenario())
    assert not web.backends[0].healthy
    assert "probe error" in caplog.text


@pytest.mark.parametrize("initial,up", [("up", True), ("fully-up", True), ("down", False),
                                        ("fully-down", False)])
def test_status_before_start(initial, up):
    web = pool("127.0.0.1:9001", rise=3, fall=2)
    status = HealthMonitor({"web": web}, initial=initial).status()["web"]["127.0.0.1:9001"]
    assert status["up"] is up
    assert status["counter_max"] == 4
    assert status["last_check"] is None
