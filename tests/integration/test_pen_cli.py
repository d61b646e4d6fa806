"""`fulcrum pen` end to end: pen's command line, its control port, its status page."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from pathlib import Path

from tests.integration.helpers import FulcrumProcess, ask, free_port
from tests.integration.test_process import BackendThread


def penctl(port: int, command: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(command.encode() + b"\n")
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply.decode()


def test_the_talks_command_line_works_as_written(tmp_path: Path) -> None:
    backends = BackendThread(["b1", "b2"], echo=True)
    port, control = free_port(), free_port()
    pidfile, status = tmp_path / "pen.pid", tmp_path / "status.html"
    argv = ["pen", "-f", "-x", "6144", "-c", "262144", "-h", "-H", "-p", str(pidfile),
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
        deadline = time.monotonic() + 10
        while not status.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
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
