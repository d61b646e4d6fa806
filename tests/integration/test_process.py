"""fulcrum as a process: check, run, signals (SIGHUP reload, SIGTERM drain), exit codes."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import threading
from pathlib import Path

from tests.integration.helpers import Backends, ask, ask_name, service_config
from tests.support import FULCRUM, FulcrumProcess, free_port, run_fulcrum, wait_for, write_toml


def test_check_prints_effective_config_with_defaults(tmp_path: Path) -> None:
    cfg = write_toml(tmp_path / "f.toml", service_config(["127.0.0.1:8080"], [9001, 9002]))
    result = subprocess.run([FULCRUM, "check", "-c", str(cfg)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert 'scheduler = "rr"' in result.stdout
    assert 'connect = "3s"' in result.stdout
    assert '"127.0.0.1:9002"' in result.stdout or 'port = 9002' in result.stdout


def test_check_names_the_bad_key_and_exits_2(tmp_path: Path) -> None:
    data = service_config(["127.0.0.1:8080"], [9001, 9002])
    data["pools"]["p"]["servers"][1] = {"address": "127.0.0.1", "port": 70000}
    data["pools"]["p"]["health"] = {"interval": "soon"}
    cfg = write_toml(tmp_path / "bad.toml", data)
    result = subprocess.run([FULCRUM, "check", "-c", str(cfg)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "pools.p.servers[1].port: must be 1..65535" in result.stderr
    assert "pools.p.health.interval:" in result.stderr


def test_port_in_use_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = write_toml(tmp_path / "f.toml", service_config([f"127.0.0.1:{port}"], [9001]))
        result = subprocess.run([FULCRUM, "run", "-c", str(cfg)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"fulcrum: cannot listen on 127.0.0.1:{port}: address already in use"]


class BackendThread:
    """Backends on their own loop in a thread, for tests that drive a fulcrum process."""

    def __init__(self, names: list[str], echo: bool = False):
        self.loop = asyncio.new_event_loop()
        self.backends = Backends()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.ports = [self.call(self.backends.start(n, echo=echo)) for n in names]

    def call(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def close(self) -> None:
        self.call(self.backends.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class Load:
    """Clients one after another on their own thread until stopped (bounded at 120 s), each
    answer or failure counted as it happens, so the test can wait on progress."""

    def __init__(self, port: int):
        self.port = port
        self.ok: list[str] = []
        self.failed: list[str] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self.thread.start()

    async def _run(self) -> None:
        deadline = asyncio.get_running_loop().time() + 120
        while not self.stopping.is_set() and asyncio.get_running_loop().time() < deadline:
            try:
                self.ok.append(await ask_name("127.0.0.1", self.port))
            except Exception as err:  # noqa: BLE001 - every failure is counted
                self.failed.append(repr(err))

    def done(self) -> int:
        return len(self.ok) + len(self.failed)

    def wait_more(self, count: int, timeout: float = 30) -> None:
        """Until `count` more requests have finished than now (fails if the load stopped)."""
        target = self.done() + count
        wait_for(lambda: self.done() >= target or not self.thread.is_alive(), timeout,
                 what=f"{count} more requests")
        assert self.done() >= target, "the load stopped"

    def stop(self) -> tuple[list[str], list[str]]:
        self.stopping.set()
        self.thread.join(30)
        assert not self.thread.is_alive()
        return self.ok, self.failed


def test_sighup_reload_under_load_loses_no_connection(tmp_path: Path) -> None:
    backends = BackendThread(["a", "b", "c"])
    port = free_port()
    data = service_config([f"127.0.0.1:{port}"], backends.ports[:2])
    data["log"] = {"level": "info"}
    cfg = write_toml(tmp_path / "f.toml", data)
    proc = FulcrumProcess(["run", "-c", str(cfg)], tmp_path / "log")
    load: Load | None = None
    try:
        proc.wait_listening(port)
        load = Load(port)
        load.wait_more(20)  # the load is running
        for i in range(6):  # alternate between two configurations while the load runs
            data["pools"]["p"]["servers"] = [f"127.0.0.1:{p}" for p in
                                             (backends.ports if i % 2 == 0 else backends.ports[:2])]
            write_toml(cfg, data)
            proc.signal(signal.SIGHUP)
            proc.wait_for_log("configuration reloaded", i + 1)
            if i % 2 == 0:  # with c: the reload took effect
                wait_for(lambda: "c" in load.ok, 30, what="an answer from c")  # type: ignore[union-attr]
            load.wait_more(20)  # requests go on being served after the reload
        # and an invalid one: rejected, the running configuration stays
        (tmp_path / "f.toml").write_text("[services.svc]\nlisten = 5\n")
        proc.signal(signal.SIGHUP)
        proc.wait_for_log("reload rejected, keeping the running configuration", 1)
        load.wait_more(20)
        ok, failed = load.stop()
        assert failed == []
        assert len(ok) >= 20 * 8
        assert "c" in ok  # the reloads took effect
        assert ask_sync(port) in {"a", "b", "c"}
    finally:
        if load is not None:
            load.stopping.set()
        code = proc.stop()
        backends.close()
    output = proc.output()
    assert code == 0
    assert output.count("configuration reloaded") >= 6
    assert "reload rejected, keeping the running configuration" in output


def ask_sync(port: int) -> str:
    return asyncio.run(ask_name("127.0.0.1", port))


def active(sock: str) -> int:
    """Open connections to the servers, as the node counts them (`fulcrum ctl servers`)."""
    done = run_fulcrum("ctl", "-s", sock, "servers")
    assert done.returncode == 0, done.stderr
    return sum(server["active"] for server in json.loads(done.stdout))


def test_sigterm_lets_established_connections_finish(tmp_path: Path) -> None:
    backends = BackendThread(["echo"], echo=True)
    port = free_port()
    data = service_config([f"127.0.0.1:{port}"], backends.ports)
    data["timeouts"] = {"drain": "10s"}
    sock = str(tmp_path / "ctl.sock")
    data["control"] = {"socket": sock}
    cfg = write_toml(tmp_path / "f.toml", data)
    proc = FulcrumProcess(["run", "-c", str(cfg)], tmp_path / "log")
    try:
        proc.wait_listening(port)
        client = socket.create_connection(("127.0.0.1", port), timeout=10)
        client.sendall(b"before ")
        # relayed (the server side is open), so it is one the stop must let finish
        proc.wait_for(lambda: active(sock) == 1, what="the connection active at the server")
        proc.signal(signal.SIGTERM)
        # logged once the listeners are closed (fulcrum/node.py stop)
        proc.wait_for_log("draining 1 connection(s)")
        # no new connections once stopping
        try:
            late = socket.create_connection(("127.0.0.1", port), timeout=2)
            late.close()
            accepted_late = True
        except OSError:
            accepted_late = False
        client.sendall(b"after")
        client.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := client.recv(65536):
            reply += chunk
        client.close()
        assert reply == b"echo:before after"
        assert not accepted_late
        assert proc.proc.wait(15) == 0
    finally:
        proc.stop()
        backends.close()


def test_daemon_writes_pidfile_and_stops_on_sigterm(tmp_path: Path) -> None:
    backends = BackendThread(["a"])
    port = free_port()
    cfg = write_toml(tmp_path / "f.toml", service_config([f"127.0.0.1:{port}"], backends.ports))
    pidfile = tmp_path / "fulcrum.pid"
    try:
        result = subprocess.run([FULCRUM, "run", "-c", str(cfg), "--daemon", "--pidfile", str(pidfile)],
                                capture_output=True, timeout=30)
        assert result.returncode == 0
        wait_for(pidfile.exists, 10, what="the pidfile")
        pid = int(pidfile.read_text())
        assert asyncio.run(ask("127.0.0.1", port)) == b"a\n"
        import os

        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not pidfile.exists(), 20, what="the pidfile removed")
    finally:
        backends.close()


def test_workers_share_the_listen_address_and_stop_together(tmp_path: Path) -> None:
    backends = BackendThread(["a", "b"])
    port = free_port()
    data = service_config([f"127.0.0.1:{port}"], backends.ports)
    data["workers"] = 2
    data["log"] = {"level": "info"}
    cfg = write_toml(tmp_path / "f.toml", data)
    proc = FulcrumProcess(["run", "-c", str(cfg)], tmp_path / "log")
    try:
        proc.wait_listening(port)
        names = [ask_sync(port) for _ in range(40)]
        assert set(names) == {"a", "b"}
    finally:
        code = proc.stop()
        backends.close()
    output = proc.output()
    assert code == 0
    assert "worker 0 started" in output and "worker 1 started" in output
    assert output.count("fulcrum started") == 2  # each worker runs its own node
    assert output.count("fulcrum stopped") == 2


def test_workers_accept_node_wide_scheduling_state(tmp_path: Path) -> None:
    # shared counters and client table (fulcrum/shared/): no longer refused with workers > 1
    data = service_config(["127.0.0.1:8080"], [9001])
    data["workers"] = 2
    data["pools"]["p"]["scheduler"] = "lc"
    data["pools"]["p"]["sticky"] = {"mode": "source"}
    data["control"] = {"pen_port": "127.0.0.1:10999"}
    cfg = write_toml(tmp_path / "f.toml", data)
    result = subprocess.run([FULCRUM, "check", "-c", str(cfg)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
