"""The daemon's datagram outputs, each to a socket of the test's own: syslog lines (RFC 3164)
and sd_notify's messages."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from fulcrum.accesslog import SyslogOutput
from fulcrum.sdnotify import notify


def test_syslog_lines_are_rfc3164_datagrams(tmp_path: Path) -> None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(tmp_path / "log"))
    server.settimeout(5)
    try:
        out = SyslogOutput(str(tmp_path / "log"), "local0")
        out.write("hello")
        packet = server.recv(4096).decode()
        assert packet.startswith("<134>")  # local0 (16) * 8 + info (6)
        assert packet.endswith(f"fulcrum[{os.getpid()}]: hello")
        out.close()
    finally:
        server.close()


def test_sd_notify_sends_to_the_socket_in_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not notify("READY=1")  # no NOTIFY_SOCKET: nothing to do
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "n"))
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "n"))
    try:
        assert notify("READY=1", "STATUS=serving")
        assert sock.recv(1024) == b"READY=1\nSTATUS=serving"
    finally:
        sock.close()
