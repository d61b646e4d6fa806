"""`fulcrum pen` end to end: pen's command line, its control port, its status page."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.helpers import ask
from tests.integration.test_process import BackendThread
from tests.support import FULCRUM, FulcrumProcess, free_port

NOBODY = pwd.getpwnam("nobody")


def penctl(port: int, command: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(command.encode() + b"\n")
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply.decode()


@pytest.fixture
def service_dir() -> Iterator[Path]:
    """A directory fulcrum can still write to after dropping root for `nobody` (pytest's
    tmp_path is root's, mode 0700)."""
    path = Path(tempfile.mkdtemp(prefix="fulcrum-pen-"))
    path.chmod(0o755)
    if os.geteuid() == 0:
        os.chown(path, NOBODY.pw_uid, NOBODY.pw_gid)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def as_service_user() -> list[str]:
    """pen (and fulcrum) refuse the control port as root: run as nobody when we are root."""
    return ["-u", "nobody"] if os.geteuid() == 0 else []


def test_the_talks_command_line_works_as_written(service_dir: Path) -> None:
    tmp_path = service_dir
    backends = BackendThread(["b1", "b2"], echo=True)
    port, control = free_port(), free_port()
    pidfile, status = tmp_path / "pen.pid", tmp_path / "status.html"
    argv = ["pen", "-f", *as_service_user(), "-x", "6144", "-c", "262144", "-h", "-H", "-p", str(pidfile),
            "-C", str(control), "-w", str(status), "-X",
            f"0.0.0.0:{port}", *(f"127.0.0.1:{p}" for p in backends.ports)]
    proc = FulcrumProcess(argv, tmp_path / "log")
    try:
        proc.wait_listening(port)
        assert int(pidfile.read_text()) == proc.proc.pid
        request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        replies = [asyncio.run(ask("127.0.0.1", port, request)) for _ in range(4)]
        # -h: the same client address always hashes to the same server
        assert len({r.split(b":")[0] for r in replies}) == 1
        # -H: the server saw X-Forwarded-For
        assert all(b"X-Forwarded-For: 127.0.0.1\r\n" in r for r in replies)
        servers = penctl(control, "servers")
        assert f"port {backends.ports[0]}" in servers and f"port {backends.ports[1]}" in servers
        assert penctl(control, "conn_max").strip() == "6144"
        assert penctl(control, "clients_max").strip() == "262144"
        proc.signal(signal.SIGUSR1)
        proc.wait_for(status.exists, what=f"the status page {status}")
        assert "<html" in status.read_text().lower()
        penctl(control, "exit")  # allowed by -X: a clean stop
        assert proc.proc.wait(15) == 0
        assert not pidfile.exists()
    finally:
        proc.stop()
        backends.close()


def test_unsupported_pen_option_is_refused_with_exit_2(tmp_path: Path) -> None:
    proc = FulcrumProcess(["pen", "-f", "-U", "8080", "127.0.0.1:9001"], tmp_path / "log")
    assert proc.proc.wait(30) == 2
    proc.stop()
    assert "-U" in proc.output() and "UDP" in proc.output()


def proc_ids(pid: int) -> dict[str, list[int]]:
    """Uid, Gid and Groups of a running process, from /proc/PID/status."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Uid", "Gid", "Groups"):
            fields[key] = [int(v) for v in value.split()]
    return fields


root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: checks what fulcrum does when started as root")


@root_only
@pytest.mark.parametrize("run_as", [[], ["-u", "root"]])
def test_the_pen_control_port_is_refused_as_root(tmp_path: Path, run_as: list[str]) -> None:
    # issue 7 item 2: pen refuses -C as root without -u; fulcrum also refuses `-u root`
    done = subprocess.run([FULCRUM, "pen", "-f", *run_as, "-C", str(free_port()), str(free_port()),
                           "127.0.0.1:9"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        "fulcrum: control.pen_port: refusing to open pen's unauthenticated control port as root; "
        "give a user to run as (pen -u USER, or `user` in the configuration)")


@root_only
def test_a_configuration_with_pen_port_and_no_user_is_refused_as_root(tmp_path: Path) -> None:
    path = tmp_path / "f.toml"
    path.write_text(f'control = {{ pen_port = {free_port()} }}\n[services.s]\nlisten = ["127.0.0.1:{free_port()}"]\n'
                    'pool = "p"\n[pools.p]\nservers = ["127.0.0.1:9"]\n')
    done = subprocess.run([FULCRUM, "run", "-c", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "refusing to open pen's unauthenticated control port as root" in done.stderr


@root_only
def test_with_u_the_process_drops_root_and_the_port_writes_only_beside_its_file(service_dir: Path) -> None:
    backends = BackendThread(["b1"], echo=True)
    port, control = free_port(), free_port()
    cfg = service_dir / "pen.cfg"
    cfg.write_text(f"server 0 address 127.0.0.1 port {backends.ports[0]}\n")
    proc = FulcrumProcess(["pen", "-f", "-u", "nobody", "-C", str(control), "-F", str(cfg), f"127.0.0.1:{port}"],
                          service_dir / "log")
    try:
        proc.wait_listening(port)  # bound (as root) ...
        assert penctl(control, "pid").strip() == str(proc.proc.pid)  # ... and serving: privileges dropped
        ids = proc_ids(proc.proc.pid)
        assert ids["Uid"] == [NOBODY.pw_uid] * 4 and ids["Gid"] == [NOBODY.pw_gid] * 4
        assert ids["Groups"] == []  # root's supplementary groups are gone too
        assert penctl(control, "control").strip() == f"127.0.0.1:{control}"  # loopback: no address given
        assert penctl(control, "write /etc/fulcrum-pen-test").startswith("error: write: ")
        assert penctl(control, "web_stats /etc/passwd").startswith("error: web_stats: ")
        assert not Path("/etc/fulcrum-pen-test").exists()
        assert penctl(control, "web_stats").strip() == ""
        assert penctl(control, "write") == ""  # the -F file, beside which it may write
        assert f"port {backends.ports[0]}" in cfg.read_text()
    finally:
        code = proc.stop()
        backends.close()
    assert code == 0, proc.output()
