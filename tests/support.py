"""The helpers every kind of test shares (integration, namespace scenarios, soak): a free
loopback port, bounded waits on a condition, and `fulcrum` as a command or a child process.

Waits are always on a condition and always bounded: a loaded machine makes things slower,
never different, so a wait that times out names what it waited for."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import tomli_w

FULCRUM = str(Path(sys.executable).with_name("fulcrum"))

T = TypeVar("T")


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now (the kernel's choice for port 0). Another process can
    take it before the caller binds it; where that matters, bind port 0 and read it back."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02,
             what: str | None = None) -> T:
    """Poll `predicate()` until it is truthy and return its value; fail after `timeout`
    seconds, naming `what` (or the predicate)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what or getattr(predicate, '__name__', predicate)}")
        time.sleep(interval)


async def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, step: float = 0.02,
                     what: str | None = None) -> Any:
    """`wait_for` for coroutines: polls without blocking the running loop. `predicate` may
    be a coroutine function (asking a server, say); its last truthy value is returned."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout}s: {what or getattr(predicate, '__name__', predicate)}")
        await asyncio.sleep(step)


def wait_connectable(port: int, host: str = "127.0.0.1", timeout: float = 10.0,
                     alive: Callable[[], None] | None = None) -> None:
    """Until something accepts connections on host:port; `alive` raises if the process
    that should listen has died (so a crash fails at once, with its reason)."""

    def accepts() -> bool:
        if alive is not None:
            alive()
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        return False

    wait_for(accepts, timeout, interval=0.05, what=f"a listener on {host}:{port}")


def write_toml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(tomli_w.dumps(data))
    return path


def run_fulcrum(*args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`fulcrum ARGS...` to completion, output captured as text."""
    return subprocess.run([FULCRUM, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


class FulcrumProcess:
    """`fulcrum run -c FILE` (or any fulcrum argv) as a child process with bounded waits."""

    def __init__(self, args: list[str], log_path: Path):
        self.log_path = log_path
        self.log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([FULCRUM, *args], stdout=self.log, stderr=subprocess.STDOUT)

    def _alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"fulcrum exited {self.proc.returncode}")

    def wait_listening(self, port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
        try:
            wait_connectable(port, host, timeout, alive=self._alive)
        except AssertionError as err:
            raise AssertionError(f"{err}\n{self.output()}") from None

    def wait_serving(self, port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
        """Listening and serving: the listeners are bound (and accept) before the signal
        handlers are set, so a SIGTERM right after `wait_listening` can find none; "serving
        with" is logged once they are (fulcrum/cli/process.py). Needs the log on stderr."""
        self.wait_listening(port, host, timeout)
        self.wait_for_log("serving with", timeout=timeout)

    def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0, what: str | None = None) -> T:
        """`wait_for` while this process runs: fails at once if it exits, and a failure
        carries its output."""

        def running_and() -> T:
            self._alive()
            return predicate()

        try:
            return wait_for(running_and, timeout, what=what or getattr(predicate, "__name__", None))
        except AssertionError as err:
            raise AssertionError(f"{err}\n{self.output()}") from None

    def wait_for_log(self, text: str, count: int = 1, timeout: float = 10.0) -> None:
        """Until `text` has been logged `count` times (signals sent close together coalesce:
        wait for each to be handled)."""
        try:
            wait_for(lambda: self.output().count(text) >= count, timeout, interval=0.02,
                     what=f"{text!r} logged {count} time(s)")
        except AssertionError as err:
            raise AssertionError(f"{err}\n{self.output()}") from None

    def signal(self, sig: signal.Signals) -> None:
        os.kill(self.proc.pid, sig)

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(5)
        self.log.close()
        return code
