"""Process handling for the benchmark: start, wait for a port, measure CPU, stop.

Every process is started in its own session so that stopping it also stops whatever it
forked (nginx workers, fulcrum workers), and every wait is bounded."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


class StartError(RuntimeError):
    """A process did not come up; the message carries the tail of its output."""


def free_port() -> int:
    """An ephemeral loopback port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait until 127.0.0.1:port accepts connections, or raise if `proc` died or time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StartError(f"exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise StartError(f"nothing listening on port {port} after {timeout:.0f}s")


def http_get_ok(port: int, timeout: float) -> bool:
    """One `GET /` through the port; true if an HTTP 200 status line comes back."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            conn.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            reply = conn.recv(64)
    except OSError:
        return False
    return reply.startswith(b"HTTP/1.1 200")


class Supervisor:
    """Owns every process the benchmark starts, and stops all of them on exit."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: Sequence[str],
              extra_env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        env = {**os.environ, **extra_env} if extra_env else None
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=self.workdir, env=env, start_new_session=True)
        log.close()  # the child holds its own copy
        self._procs.append(proc)
        return proc

    def log_tail(self, name: str, lines: int = 5) -> str:
        path = self.workdir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
        """SIGTERM the process group, then SIGKILL it if it outlives `timeout`."""
        if proc in self._procs:
            self._procs.remove(proc)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if proc.poll() is not None and not _group_alive(proc.pid):
                return
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                continue

    def stop_all(self) -> None:
        for proc in reversed(list(self._procs)):
            self.stop(proc)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def parse_stat(text: str) -> tuple[int, int, int]:
    """(parent pid, utime, stime), times in clock ticks, from one /proc/<pid>/stat line.

    The command name (field 2) is in parentheses and may itself contain spaces or
    parentheses, so fields are counted from the last ')'. See proc(5): ppid is field 4,
    utime 14, stime 15; for a thread-group leader they cover all of its threads."""
    rest = text[text.rindex(")") + 2:].split()
    ppid = int(rest[1])
    return ppid, int(rest[11]), int(rest[12])


def _all_stats() -> dict[int, tuple[int, int, int]]:
    stats: dict[int, tuple[int, int, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stats[int(entry.name)] = parse_stat(Path(entry.path, "stat").read_text())
        except (OSError, ValueError, IndexError):
            continue  # the process ended while we looked
    return stats


def tree_ticks(root: int) -> dict[int, tuple[int, int]]:
    """CPU ticks (user, sys; all threads) of `root` and all its descendants, by pid."""
    stats = _all_stats()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    ticks: dict[int, tuple[int, int]] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            ticks[pid] = stats[pid][1:]
            todo.extend(children.get(pid, ()))
    return ticks


def cpu_seconds_between(before: dict[int, tuple[int, int]],
                        after: dict[int, tuple[int, int]]) -> tuple[float, float]:
    """(user, sys) CPU seconds spent between two `tree_ticks` snapshots.

    Processes born in between count whole; those that ended in between are lost (the
    balancers here keep their processes for the whole run)."""
    user = system = 0
    for pid, (utime, stime) in after.items():
        old_user, old_sys = before.get(pid, (0, 0))
        user += utime - old_user
        system += stime - old_sys
    return user / CLOCK_TICKS_PER_SECOND, system / CLOCK_TICKS_PER_SECOND
