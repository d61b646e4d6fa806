"""A VRRP engine that cannot run (its interface does not exist) is started again with
a growing delay and an error naming the interface, not several times a second forever.
No root needed: the engine fails on the interface name before it opens a raw socket."""

from __future__ import annotations

import re
from pathlib import Path

import tomli_w

from fulcrum.cluster.process import EngineProcess, RestartBackoff, missing_interfaces
from fulcrum.config.cluster import Cluster
from tests.integration.helpers import service_config
from tests.support import FulcrumProcess, free_port

MISSING = "fcnope0"  # a name no machine of ours has
CLUSTER = {"virtual_routers": {"web": {"vrid": 51, "interface": MISSING, "vips": ["198.18.0.100/24"]}}}


def test_backoff_doubles_up_to_its_limit_and_resets_after_a_stable_run():
    backoff = RestartBackoff(first=1, longest=8, stable=60)
    assert [backoff.next_delay(started_at=0, died_at=0.3) for _ in range(6)] == [1, 2, 4, 8, 8, 8]
    assert backoff.next_delay(started_at=100, died_at=170) == 1  # ran 70 s: a new series
    assert backoff.next_delay(started_at=170, died_at=170.2) == 2


def test_missing_interfaces_are_named():
    assert missing_interfaces(Cluster.model_validate(CLUSTER)) == [
        f"interface '{MISSING}' of virtual router 'web' does not exist"]
    loopback = {"virtual_routers": {"web": dict(CLUSTER["virtual_routers"]["web"], interface="lo")}}
    assert missing_interfaces(Cluster.model_validate(loopback)) == []


def wait_dead(engine: EngineProcess) -> None:
    assert engine.process is not None
    engine.process.join(30)
    assert not engine.alive()


def test_a_dead_engine_is_started_again_only_when_its_delay_is_over(caplog):
    engine = EngineProcess(Cluster.model_validate(CLUSTER))
    engine.start(now=100.0)
    try:
        first = engine.process
        wait_dead(engine)
        engine.supervise(now=100.5)  # noticed: logged once, restart due at 101.5
        assert engine.process is first and engine.restart_at == 101.5
        assert f"exited with status 1: interface '{MISSING}' of virtual router 'web' does not exist; " \
               "starting it again in 1s" in caplog.text
        engine.supervise(now=101.0)
        assert engine.process is first  # not yet
        engine.supervise(now=101.5)
        assert engine.process is not first  # started again
        wait_dead(engine)
        engine.supervise(now=102.0)
        assert engine.restart_at == 104.0  # the second delay is longer
        assert caplog.text.count("starting it again in") == 2
    finally:
        engine.stop()


def test_fulcrum_run_restarts_its_engine_with_growing_delays(tmp_path: Path):
    port = free_port()
    data = service_config([f"127.0.0.1:{port}"], [free_port()])
    data["cluster"] = CLUSTER
    config = tmp_path / "f.toml"
    config.write_text(tomli_w.dumps(data))
    node = FulcrumProcess(["run", "-c", str(config)], tmp_path / "node.log")
    try:
        node.wait_listening(port)  # the proxy serves while its engine cannot run
        node.wait_for_log("starting it again in 4s", timeout=30)
        delays = re.findall(rf"interface '{MISSING}' of virtual router 'web' does not exist; "
                            r"starting it again in (\d+)s", node.output())
        assert delays[:3] == ["1", "2", "4"], node.output()
        assert node.proc.poll() is None
    finally:
        node.stop()
