"""Bad input from the operator is one line naming the cause, with the documented exit status
(2: a configuration or file fulcrum cannot read; 1: something it cannot do: write a file,
bind a port), never a traceback or an empty answer (issue 7 item 13)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import FulcrumProcess, free_port, run_fulcrum

MISSING = "/nonexistent-fulcrum-dir/x"


def service(port: int, extra: str = "") -> str:
    return (f'{extra}\n[services.s]\nlisten = ["127.0.0.1:{port}"]\npool = "p"\n'
            '[pools.p]\nservers = ["127.0.0.1:9"]\nhealth = { kind = "none" }\n')


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    text = done.stdout + done.stderr
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


@pytest.mark.parametrize(("content", "reason"), [
    (b"\xff\xfe\x00\x01binary", "not a TOML file: byte 0 is not UTF-8 text"),
    ("# caf\u00e9\n".encode("latin-1") + b"[services.s]\n", "not a TOML file: byte 5 is not UTF-8 text"),
    (b"a = " + b"[" * 100000 + b"]" * 100000 + b"\n", "not valid TOML: arrays or tables nested too deeply"),
])
@pytest.mark.parametrize("command", ["check", "run"])
def test_an_unreadable_configuration_is_one_line_and_exit_2(tmp_path: Path, content: bytes, reason: str,
                                                            command: str) -> None:
    path = tmp_path / "f.toml"
    path.write_bytes(content)
    done = run_fulcrum(command, "-c", str(path))
    assert done.returncode == 2
    assert one_line(done) == f"fulcrum: {path}: {reason}"


def test_pen_F_on_a_binary_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "pen.cfg"
    path.write_bytes(b"\x7fELF\x02\x01\x01\x00\xff\xfe")
    done = run_fulcrum("pen", "-f", "-F", str(path), str(free_port()), "127.0.0.1:9")
    assert done.returncode == 2
    assert one_line(done) == f"fulcrum: pen -F {path}: not a pen configuration file: byte 8 is not text"


@pytest.mark.parametrize(("args", "reason"), [
    (["run", "--pidfile", f"{MISSING}/fulcrum.pid"], f"fulcrum: cannot write pidfile {MISSING}/fulcrum.pid: "
                                                     "No such file or directory"),
    (["control.socket"], f"cannot create control.socket {MISSING}/ctl.sock: No such file or directory"),
])
def test_run_with_a_file_it_cannot_write_is_one_line_and_exit_1(tmp_path: Path, args: list[str], reason: str) -> None:
    path = tmp_path / "f.toml"
    if args == ["control.socket"]:
        path.write_text(service(free_port(), f'control = {{ socket = "{MISSING}/ctl.sock" }}'))
        args = ["run"]
    else:
        path.write_text(service(free_port(), 'control = { socket = "off" }'))
    done = run_fulcrum(*args, "-c", str(path))
    assert done.returncode == 1
    assert one_line(done).endswith(reason)


def test_an_unwritable_log_file_is_one_line_and_logging_goes_to_standard_error(tmp_path: Path) -> None:
    port = free_port()
    path = tmp_path / "f.toml"
    path.write_text(service(port, f'control = {{ socket = "off" }}\nlog = {{ file = "{MISSING}/fulcrum.log" }}'))
    proc = FulcrumProcess(["run", "-c", str(path)], tmp_path / "out")
    try:
        proc.wait_serving(port)
    finally:
        assert proc.stop() == 0
    text = proc.output()
    assert "Traceback" not in text
    assert f"log.file {MISSING}/fulcrum.log cannot be opened (No such file or directory); logging to standard error" \
        in text.splitlines()[0]


def test_pen_p_into_a_missing_directory_is_one_line_and_exit_1() -> None:
    done = run_fulcrum("pen", "-f", "-p", f"{MISSING}/pen.pid", str(free_port()), "127.0.0.1:9")
    assert done.returncode == 1
    assert one_line(done) == f"fulcrum: cannot write pidfile {MISSING}/pen.pid: No such file or directory"


def test_pen_l_into_a_missing_directory_is_one_line_and_exit_1() -> None:
    done = run_fulcrum("pen", "-f", "-l", f"{MISSING}/pen.log", str(free_port()), "127.0.0.1:9")
    assert done.returncode == 1
    line = one_line(done)
    assert f"cannot open {MISSING}/pen.log: No such file or directory" in line


def test_pen_C_on_a_port_in_use_is_one_line_and_exit_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run_as = ["-u", "nobody"] if os.geteuid() == 0 else []
        done = run_fulcrum("pen", "-f", *run_as, "-C", str(port), str(free_port()), "127.0.0.1:9")
    assert done.returncode == 1
    assert one_line(done) == f"fulcrum: cannot listen on 127.0.0.1:{port}: address already in use"


def test_import_into_a_missing_directory_is_one_line_and_exit_1(tmp_path: Path) -> None:
    source = tmp_path / "keepalived.conf"
    source.write_text("virtual_server 10.0.0.1 80 {\n    real_server 10.0.0.2 80 {\n    }\n}\n")
    done = run_fulcrum("import", "keepalived", str(source), "-o", f"{MISSING}/out.toml")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    # (the importer's warnings about the file come first, one line each)
    assert done.stderr.splitlines()[-1] == f"fulcrum: cannot write {MISSING}/out.toml: No such file or directory"


# -- a running node: its signals and its control socket -----------------------------------

@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FulcrumProcess, str]]:
    tmp = tmp_path_factory.mktemp("node")
    sock, port = str(tmp / "ctl.sock"), free_port()
    (tmp / "www").mkdir()  # the status page's directory: removed while the node runs
    path = tmp / "f.toml"
    path.write_text(service(port, f'control = {{ socket = "{sock}", status_file = "{tmp}/www/status.html" }}'))
    proc = FulcrumProcess(["run", "-c", str(path)], tmp / "out")
    proc.wait_listening(port)  # bound; serving (signal handlers set) once the control socket answers:
    proc.wait_for(lambda: os.path.exists(sock), what=f"the control socket {sock}")
    assert ask(sock, b'{"command": "status"}\n')["ok"] is True, proc.output()
    yield proc, sock
    proc.stop()


def ask(sock: str, payload: bytes) -> dict[str, object]:
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(15)
        client.connect(sock)
        client.sendall(payload)
        reply = b""
        while chunk := client.recv(65536):
            reply += chunk
    answer: dict[str, object] = json.loads(reply)
    return answer


def test_sigusr1_with_an_unwritable_status_file_is_one_line_and_the_node_keeps_serving(
        node: tuple[FulcrumProcess, str]) -> None:
    proc, sock = node
    status_dir = Path(sock).parent / "www"
    status_dir.rmdir()
    proc.signal(signal.SIGUSR1)
    proc.wait_for_log("not written")
    text = proc.output()
    assert "Traceback" not in text
    assert f"status page {status_dir}/status.html not written: No such file or directory" in text
    assert proc.proc.poll() is None and ask(sock, b'{"command": "status"}\n')["ok"] is True


@pytest.mark.parametrize(("payload", "error"), [
    (b'{"command": "status", "args": {"x": "' + b"a" * 70000 + b'"}}\n', "request too large (more than 64 KiB on one line)"),
    (b'{"command": "status", "args": ' + b"[" * 30000 + b"]" * 30000 + b"}\n", "request nested too deeply"),
])
def test_oversized_or_deep_control_requests_get_a_clear_error(node: tuple[FulcrumProcess, str], payload: bytes,
                                                              error: str) -> None:
    proc, sock = node
    assert ask(sock, payload) == {"ok": False, "error": error}
    assert "Traceback" not in proc.output()


@pytest.mark.parametrize(("words", "reason"), [
    (["reload", "/etc/fulcrum/fulcrum.toml"], "fulcrum ctl: reload: takes a whole configuration (a JSON object), "
                                              "not a file name; to re-read the node's own file give no argument "
                                              "(`fulcrum ctl reload`)"),
    (["config.write", f"{MISSING}/out.toml"], f"fulcrum ctl: config.write: {MISSING}/out.toml: "
                                              "No such file or directory"),
])
def test_ctl_mistakes_are_one_line_and_exit_1(node: tuple[FulcrumProcess, str], words: list[str], reason: str) -> None:
    proc, sock = node
    done = run_fulcrum("ctl", "-s", sock, *words)
    assert done.returncode == 1
    assert one_line(done) == reason
    assert "Traceback" not in proc.output()
