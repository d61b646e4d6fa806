"""The OCF resource agent (packaging/ocf/fulcrum) driven as Pacemaker drives it: actions as
arguments, parameters as OCF_RESKEY_* variables, against a real fulcrum on loopback. And the
systemd unit, checked by systemd-analyze."""

from __future__ import annotations

import configparser
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import xml.dom.minidom
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_http_support import BackendProcess
from tests.integration.test_import_cli import fetch_name
from tests.support import FULCRUM, free_port

ROOT = Path(__file__).resolve().parents[2]
AGENT = ROOT / "packaging" / "ocf" / "fulcrum"
UNIT = ROOT / "packaging" / "systemd" / "fulcrum.service"
OCF_SUCCESS, OCF_ERR_GENERIC, OCF_ERR_UNIMPLEMENTED, OCF_ERR_INSTALLED, OCF_ERR_CONFIGURED, OCF_NOT_RUNNING = 0, 1, 3, 5, 6, 7
SHELL = shutil.which("dash") or "/bin/sh"  # POSIX sh: dash where present catches bashisms


class Agent:
    def __init__(self, tmp_path: Path, config: Path, **params: str):
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OCF_RESOURCE_INSTANCE": "lb",
                    "OCF_RESKEY_config": str(config), "OCF_RESKEY_binary": FULCRUM,
                    "OCF_RESKEY_pidfile": str(tmp_path / "run" / "fulcrum.pid"),
                    **{f"OCF_RESKEY_{k}": v for k, v in params.items()}}

    def __call__(self, action: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([SHELL, str(AGENT), action], env={**self.env, **env},
                              capture_output=True, text=True, timeout=90)

    def status(self, action: str, **env: str) -> int:
        return self(action, **env).returncode

    @property
    def pid(self) -> int:
        return int(Path(self.env["OCF_RESKEY_pidfile"]).read_text())


def write_config(tmp_path: Path, listen: int, backend: int) -> Path:
    path = tmp_path / "fulcrum.toml"
    path.write_text(textwrap.dedent(f"""\
        [services.web]
        listen = ["127.0.0.1:{listen}"]
        pool = "p"
        [pools.p]
        servers = ["127.0.0.1:{backend}"]
        [pools.p.health]
        kind = "none"
        """))
    return path


@pytest.fixture
def backend() -> Iterator[BackendProcess]:
    proc = BackendProcess("ocf")
    yield proc
    proc.stop()


def test_start_stop_monitor_exit_codes(tmp_path: Path, backend: BackendProcess) -> None:
    port = free_port()
    agent = Agent(tmp_path, write_config(tmp_path, port, backend.port), monitor_address=f"127.0.0.1:{port}")
    try:
        assert agent.status("monitor") == OCF_NOT_RUNNING
        assert agent.status("validate-all") == OCF_SUCCESS
        started = agent("start")
        assert started.returncode == OCF_SUCCESS, started.stderr
        assert agent.status("monitor") == OCF_SUCCESS
        assert fetch_name(port) == "ocf"  # fulcrum relays to the backend
        pid = agent.pid
        assert agent.status("start") == OCF_SUCCESS  # already running: still success, same process
        assert agent.pid == pid
        assert agent.status("stop") == OCF_SUCCESS
        assert agent.status("monitor") == OCF_NOT_RUNNING
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        assert agent.status("stop") == OCF_SUCCESS  # stopping a stopped resource succeeds
    finally:
        agent("stop")


def test_a_running_process_whose_address_refuses_fails_monitor(tmp_path: Path, backend: BackendProcess) -> None:
    port = free_port()
    agent = Agent(tmp_path, write_config(tmp_path, port, backend.port), monitor_address=f"127.0.0.1:{free_port()}")
    try:
        # never answers on the monitored address: start gives up within Pacemaker's timeout
        assert agent.status("start", OCF_RESKEY_CRM_meta_timeout="5000") == OCF_ERR_GENERIC
        assert agent.status("monitor", OCF_RESKEY_monitor_address="") == OCF_SUCCESS
        assert agent.status("monitor") == OCF_ERR_GENERIC
    finally:
        assert agent.status("stop") == OCF_SUCCESS


def test_a_stale_pidfile_is_not_running(tmp_path: Path, backend: BackendProcess) -> None:
    agent = Agent(tmp_path, write_config(tmp_path, free_port(), backend.port))
    pidfile = Path(agent.env["OCF_RESKEY_pidfile"])
    pidfile.parent.mkdir()
    pidfile.write_text(f"{os.getpid()}\n")  # alive, but this is pytest, not fulcrum
    assert agent.status("monitor") == OCF_NOT_RUNNING
    assert agent.status("stop") == OCF_SUCCESS
    assert not pidfile.exists()


@pytest.mark.parametrize("text", ["services = 3\n", "[services.web]\nlisten = [80]\npool = 'nowhere'\n"])
def test_a_bad_configuration_is_not_configured(tmp_path: Path, text: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    agent = Agent(tmp_path, config)
    for action in ("validate-all", "start"):
        result = agent(action)
        assert result.returncode == OCF_ERR_CONFIGURED, result.stderr
        assert "not valid" in result.stderr
    assert agent.status("monitor") == OCF_NOT_RUNNING
    agent.env["OCF_RESKEY_config"] = str(tmp_path / "missing.toml")
    assert agent.status("validate-all") == OCF_ERR_CONFIGURED
    agent.env["OCF_RESKEY_binary"] = str(tmp_path / "no-such-fulcrum")
    assert agent.status("validate-all") == OCF_ERR_INSTALLED


def test_meta_data_is_xml_naming_every_parameter_and_action(tmp_path: Path) -> None:
    result = Agent(tmp_path, tmp_path / "unused.toml")("meta-data")
    assert result.returncode == OCF_SUCCESS
    document = xml.dom.minidom.parseString(result.stdout)
    agent = document.documentElement
    assert agent.tagName == "resource-agent" and agent.getAttribute("name") == "fulcrum"
    names = {p.getAttribute("name") for p in agent.getElementsByTagName("parameter")}
    assert names == {"config", "pidfile", "binary", "monitor_address"}
    actions = {a.getAttribute("name") for a in agent.getElementsByTagName("action")}
    assert actions == {"start", "stop", "monitor", "meta-data", "validate-all"}


def test_unknown_actions_are_unimplemented(tmp_path: Path) -> None:
    agent = Agent(tmp_path, tmp_path / "unused.toml")
    assert agent.status("promote") == OCF_ERR_UNIMPLEMENTED
    assert agent.status("") != OCF_SUCCESS


STUBBORN = f"""\
#!{sys.executable}
# A stand-in for fulcrum that ignores SIGTERM, to drive the agent's last resort.
import os, signal, sys, time
if sys.argv[1] == "check":
    sys.exit(0)
pidfile = sys.argv[sys.argv.index("--pidfile") + 1]
if os.fork() == 0:
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)  # as a daemon does: the agent's pipes close
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    open(pidfile, "w").write(str(os.getpid()))
    deadline = time.monotonic() + 120  # never outlives the test run for long
    while time.monotonic() < deadline:
        time.sleep(0.2)
    sys.exit(0)
"""


def test_sigkill_only_for_the_pidfiles_process_after_the_stop_timeout(tmp_path: Path, backend: BackendProcess) -> None:
    stubborn = tmp_path / "bin" / "fulcrum"
    stubborn.parent.mkdir()
    stubborn.write_text(STUBBORN)
    stubborn.chmod(0o755)
    agent = Agent(tmp_path, write_config(tmp_path, free_port(), backend.port), binary=str(stubborn))
    # another fulcrum node on this machine, which the stop must leave alone (no killall)
    neighbour_port = free_port()
    neighbour = Agent(tmp_path / "other", write_config(tmp_path, neighbour_port, backend.port))
    (tmp_path / "other").mkdir()
    try:
        assert neighbour.status("start") == OCF_SUCCESS
        assert agent.status("start") == OCF_SUCCESS
        pid = agent.pid
        # Pacemaker's 3 s stop timeout leaves the agent 1 s before the SIGKILL
        result = agent("stop", OCF_RESKEY_CRM_meta_timeout="3000")
        assert result.returncode == OCF_SUCCESS and "SIGKILL" in result.stderr
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        assert neighbour.status("monitor") == OCF_SUCCESS
        assert fetch_name(neighbour_port) == "ocf"
    finally:
        with_pid = Path(agent.env["OCF_RESKEY_pidfile"])
        if with_pid.exists():
            try:
                os.kill(int(with_pid.read_text()), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        neighbour("stop")


# -- systemd -----------------------------------------------------------------------------


def read_unit() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(UNIT)
    return unit


def test_unit_runs_reloads_and_stops_fulcrum_as_designed() -> None:
    service = read_unit()["Service"]
    assert service["ExecStart"] == "/opt/fulcrum/bin/fulcrum run -c /etc/fulcrum/fulcrum.toml"  # venv, the .deb
    assert service["ExecStartPre"] == "/opt/fulcrum/bin/fulcrum check -q -c /etc/fulcrum/fulcrum.toml"
    # checks the file, then waits for the node's answer (a refused reload fails the unit's reload)
    assert service["ExecReload"] == "/opt/fulcrum/bin/fulcrum reload -c /etc/fulcrum/fulcrum.toml"
    assert service["Type"] == "notify" and service["NotifyAccess"] == "all"
    assert service["RuntimeDirectory"] == "fulcrum"  # where the control socket is
    assert service["KillSignal"] == "SIGTERM" and service["Restart"] == "on-failure"
    assert set(service["AmbientCapabilities"].split()) == {"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_NET_BIND_SERVICE"}
    # the default drain (10 s) and one notify hook's timeout (10 s) fit in the stop timeout
    from fulcrum.config.cluster import Notify
    from fulcrum.config.model import Timeouts

    assert float(service["TimeoutStopSec"].removesuffix("s")) > Timeouts().drain + Notify().timeout


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    unit = tmp_path / "fulcrum.service"
    unit.write_text(UNIT.read_text().replace("/opt/fulcrum/bin/fulcrum", FULCRUM))
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "fulcrum.service" not in result.stderr, result.stderr
    # the same check fails for a unit whose program is missing: it is really checking
    unit.write_text(UNIT.read_text().replace("/opt/fulcrum/bin/fulcrum", str(tmp_path / "missing")))
    broken = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60)
    assert broken.returncode != 0 or "missing" in broken.stderr
