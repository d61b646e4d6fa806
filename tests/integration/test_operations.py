"""fulcrum as an operator runs it: systemd's readiness protocol, `fulcrum reload -c FILE`
waiting for the result, `--daemon` exiting only once the daemon serves (or with the reason)."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import tomli_w

from tests.integration.helpers import service_config
from tests.integration.test_process import BackendThread, ask_sync
from tests.support import FulcrumProcess, free_port, run_fulcrum, wait_for


def write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(tomli_w.dumps(data))


def receive(sock: socket.socket, timeout: float = 15.0) -> str:
    sock.settimeout(timeout)
    return sock.recv(4096).decode()


def test_notify_ready_reloading_stopping_and_reload_command(tmp_path: Path) -> None:
    backends = BackendThread(["a", "b"])
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    cfg = tmp_path / "f.toml"
    port = free_port()
    data = service_config([f"127.0.0.1:{port}"], backends.ports[:1])
    data["control"] = {"socket": str(tmp_path / "control.sock")}
    write(cfg, data)
    env_before = os.environ.get("NOTIFY_SOCKET")
    os.environ["NOTIFY_SOCKET"] = str(tmp_path / "notify")
    try:
        proc = FulcrumProcess(["run", "-c", str(cfg)], tmp_path / "out.log")
    finally:
        if env_before is None:
            del os.environ["NOTIFY_SOCKET"]
        else:
            os.environ["NOTIFY_SOCKET"] = env_before
    try:
        assert "READY=1" in receive(notify)
        data["pools"]["p"]["servers"].append(f"127.0.0.1:{backends.ports[1]}")
        write(cfg, data)
        result = run_fulcrum("reload", "-c", str(cfg))
        assert result.returncode == 0, result.stderr
        assert "reloaded: 1 service(s), 1 pool(s)" in result.stdout
        assert "RELOADING=1" in (reloading := receive(notify)) and "MONOTONIC_USEC=" in reloading
        assert "READY=1" in receive(notify)

        # an invalid file: refused before the node is asked (exit 2, no reload happens)
        bad = dict(data, workers=0)
        write(cfg, bad)
        result = run_fulcrum("reload", "-c", str(cfg))
        assert result.returncode == 2 and "workers" in result.stderr
        # a file the node cannot apply (its access log directory is missing): exit 1, the reason
        data["log"] = {"access": str(tmp_path / "nowhere" / "access.log")}
        write(cfg, data)
        result = run_fulcrum("reload", "-c", str(cfg))
        assert result.returncode == 1 and "nowhere" in result.stderr, result.stderr
        assert "RELOADING=1" in receive(notify) and "READY=1" in receive(notify)
        assert "reload rejected" in proc.output()

        proc.signal(signal.SIGTERM)
        assert "STOPPING=1" in receive(notify)
        assert proc.proc.wait(20) == 0
    finally:
        proc.stop()
        notify.close()
        backends.close()


def test_daemon_exits_non_zero_with_the_reason_when_it_cannot_serve(tmp_path: Path) -> None:
    cfg = tmp_path / "f.toml"
    data = service_config([f"127.0.0.1:{free_port()}"], [9])
    data["log"] = {"file": str(tmp_path / "fulcrum.log"), "access": str(tmp_path / "nowhere" / "access.log")}
    data["control"] = {"socket": "off"}
    write(cfg, data)
    result = run_fulcrum("run", "--daemon", "-c", str(cfg))
    assert result.returncode == 1
    assert "cannot start" in result.stderr and "nowhere" in result.stderr


def test_daemon_with_relative_paths_serves_and_reloads(tmp_path: Path) -> None:
    backends = BackendThread(["a", "b"])
    port = free_port()
    data = service_config([f"127.0.0.1:{port}"], backends.ports[:1])
    data["log"] = {"file": "fulcrum.log"}  # relative to where fulcrum was started, not to /
    data["control"] = {"socket": "control.sock"}
    write(tmp_path / "f.toml", data)
    pid = 0
    try:
        result = run_fulcrum("run", "--daemon", "-c", "f.toml", "--pidfile", "fulcrum.pid", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        pid = int((tmp_path / "fulcrum.pid").read_text())
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # serving when --daemon returned: no wait needed
        data["pools"]["p"]["servers"].append(f"127.0.0.1:{backends.ports[1]}")
        write(tmp_path / "f.toml", data)
        result = run_fulcrum("reload", "-c", "f.toml", cwd=tmp_path)  # the daemon re-reads its own, absolute path
        assert result.returncode == 0, result.stderr + (tmp_path / "fulcrum.log").read_text()
        assert "configuration reloaded" in (tmp_path / "fulcrum.log").read_text()
        assert (tmp_path / "control.sock").exists()
    finally:
        if pid:
            os.kill(pid, signal.SIGTERM)
            wait_for(lambda: not (tmp_path / "fulcrum.pid").exists(), 20, what="the pidfile removed")
        backends.close()


def test_access_log_lines_reopen_on_sighup_and_the_status_table(tmp_path: Path) -> None:
    backends = BackendThread(["a"])
    cfg = tmp_path / "f.toml"
    access = tmp_path / "access.log"
    port = free_port()
    data = service_config([f"127.0.0.1:{port}"], backends.ports)
    data["log"] = {"access": str(access), "level": "info"}
    data["control"] = {"socket": str(tmp_path / "control.sock")}
    write(cfg, data)
    proc = FulcrumProcess(["run", "-c", str(cfg)], tmp_path / "out.log")
    try:
        proc.wait_listening(port)
        assert ask_sync(port) == "a"
        wait_for(lambda: access.exists() and access.read_text().count("\n") >= 2)  # the probe above too
        line = access.read_text().splitlines()[-1].split()
        assert line[1].startswith("127.0.0.1:") and line[2] == "svc"
        assert line[3] == f"p/127.0.0.1:{backends.ports[0]}" and line[-1] == "-"  # a normal end

        access.rename(tmp_path / "access.log.1")  # logrotate without copytruncate
        proc.signal(signal.SIGHUP)
        wait_for(lambda: access.exists())
        assert ask_sync(port) == "a"
        wait_for(lambda: access.read_text().count("\n") == 1)
        rotated = (tmp_path / "access.log.1").read_text().count("\n")

        table = run_fulcrum("ctl", "-c", str(cfg), "--interval", "0.2", "status")
        assert table.returncode == 0, table.stderr
        assert table.stdout.startswith("fulcrum ")
        assert "svc tcp 127.0.0.1:" in table.stdout and f"-> 127.0.0.1:{backends.ports[0]}" in table.stdout
        as_json = run_fulcrum("ctl", "-c", str(cfg), "status", "--json")
        assert as_json.returncode == 0 and '"pools"' in as_json.stdout
        assert (tmp_path / "access.log.1").read_text().count("\n") == rotated  # nothing more went there
    finally:
        proc.stop()
        backends.close()


def test_pen_l_writes_the_access_log(tmp_path: Path) -> None:
    backends = BackendThread(["a"])
    port = free_port()
    log = tmp_path / "pen.log"
    proc = FulcrumProcess(["pen", "-f", "-l", str(log), f"127.0.0.1:{port}", f"127.0.0.1:{backends.ports[0]}"],
                          tmp_path / "out.log")
    try:
        proc.wait_listening(port)
        assert ask_sync(port) == "a"
        wait_for(lambda: log.exists() and f"127.0.0.1:{backends.ports[0]}" in log.read_text())
    finally:
        proc.stop()
        backends.close()


def test_ctl_works_without_configuring_a_socket(tmp_path: Path) -> None:
    """No control section: the node serves its socket at the default place (systemd's
    $RUNTIME_DIRECTORY here, as the unit gives it) and `fulcrum ctl` finds it there."""
    backends = BackendThread(["a"])
    cfg = tmp_path / "f.toml"
    port = free_port()
    write(cfg, service_config([f"127.0.0.1:{port}"], backends.ports))
    runtime = tmp_path / "run"
    runtime.mkdir()
    before = os.environ.get("RUNTIME_DIRECTORY")
    os.environ["RUNTIME_DIRECTORY"] = str(runtime)
    try:
        proc = FulcrumProcess(["run", "-c", str(cfg)], tmp_path / "out.log")
        try:
            proc.wait_listening(port)
            wait_for(lambda: (runtime / "control.sock").exists())
            table = run_fulcrum("ctl", "--interval", "0", "status")
            assert table.returncode == 0, table.stderr
            assert f"-> 127.0.0.1:{backends.ports[0]}" in table.stdout
            drained = run_fulcrum("ctl", "server.drain", f"127.0.0.1:{backends.ports[0]}")
            assert drained.returncode == 0, drained.stderr
        finally:
            proc.stop()
    finally:
        if before is None:
            del os.environ["RUNTIME_DIRECTORY"]
        else:
            os.environ["RUNTIME_DIRECTORY"] = before
        backends.close()


def test_daemon_without_a_log_file_logs_to_syslog(tmp_path: Path) -> None:
    syslog = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    syslog.bind(str(tmp_path / "log"))
    cfg = tmp_path / "f.toml"
    data = service_config([f"127.0.0.1:{free_port()}"], [9])
    data["log"] = {"syslog_socket": str(tmp_path / "log")}
    data["control"] = {"socket": "off"}
    write(cfg, data)
    pidfile = tmp_path / "fulcrum.pid"
    result = run_fulcrum("run", "--daemon", "-c", str(cfg), "--pidfile", str(pidfile))
    try:
        assert result.returncode == 0, result.stderr
        lines = []
        deadline = time.monotonic() + 15
        while not any("serving with" in line for line in lines) and time.monotonic() < deadline:
            lines.append(receive(syslog, timeout=max(0.1, deadline - time.monotonic())))
        assert any("serving with" in line and line.startswith("<") for line in lines), lines
    finally:
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
        syslog.close()
