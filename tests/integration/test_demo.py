"""`make demo` runs `fulcrum demo`: it must show the spread and the routing around a dead backend."""

from __future__ import annotations

import random
import re
import socket
import subprocess

from tests.support import FULCRUM, free_port


def free_port_run(count: int) -> int:
    """`count` consecutive free ports below the ephemeral range (the demo's backends)."""
    for _ in range(200):
        first = random.randrange(20000, 30000)
        try:
            for port in range(first, first + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise AssertionError("no run of free ports found")


def test_demo_spreads_by_weight_and_routes_around_a_stopped_backend() -> None:
    listen, first_backend = free_port("::1"), free_port_run(3)
    result = subprocess.run(
        [FULCRUM, "demo", "--no-wait", "--listen-port", str(listen), "--backend-port", str(first_backend)],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    before, after = result.stdout.split("Stopping backend-3")
    counts = {name: int(n) for name, n in re.findall(r"(backend-\d)\s+(\d+)", before)}
    assert counts == {"backend-1": 10, "backend-2": 10, "backend-3": 20}  # weights 1:1:2
    counts_after = {name: int(n) for name, n in re.findall(r"(backend-\d)\s+(\d+)", after)}
    assert counts_after == {"backend-1": 20, "backend-2": 20}  # none failed, none to backend-3
    assert "FAILED" not in result.stdout
    assert f"127.0.0.1:{first_backend + 2}=DOWN" in result.stdout
