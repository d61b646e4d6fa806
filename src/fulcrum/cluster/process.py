"""The node's handle on its VRRP engine, which runs in a process of its own
(DESIGN.md, failure domains: adverts are never late because the proxy is busy).

The node tells the engine when a pool has no healthy server from here (tracked
pools lower the priority or fault the router); the engine owns VIPs and adverts.
Stopping the handle sends SIGTERM: every master advertises priority 0 and releases
its VIPs before the engine exits. An engine that exits on its own is started again
after a growing delay (`RestartBackoff`), and the log says why it exited when the
node can tell (an interface that does not exist)."""

from __future__ import annotations

import logging
import multiprocessing
import socket
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from fulcrum.balance.pool import PoolRuntime
from fulcrum.config.cluster import Cluster
from fulcrum.config.model import Logging

log = logging.getLogger("fulcrum.cluster")

STOP_TIMEOUT = 10.0


@dataclass
class RestartBackoff:
    """How long to wait before starting a dead engine again: `first` seconds, doubling
    up to `longest`; an engine that ran `stable` seconds before it died starts the
    series again. Pure: the caller passes the clock."""

    first: float = 1.0
    longest: float = 30.0
    stable: float = 60.0
    failures: int = 0

    def next_delay(self, started_at: float, died_at: float) -> float:
        if died_at - started_at >= self.stable:
            self.failures = 0
        delay: float = min(self.first * 2.0 ** self.failures, self.longest)
        self.failures += 1
        return delay


def missing_interfaces(cluster: Cluster) -> list[str]:
    """`interface 'X' of virtual router 'Y' does not exist` for each router whose
    interface this machine lacks: the usual reason an engine cannot start."""
    present = {name for _, name in socket.if_nameindex()}
    return [f"interface {router.interface!r} of virtual router {name!r} does not exist"
            for name, router in cluster.virtual_routers.items() if router.interface not in present]


def engine_main(cluster: Cluster, channel: Connection, logging_settings: Logging) -> None:
    """The engine process: the node's log settings (level, format, file), then the engine."""
    from fulcrum.cluster.runner import serve
    from fulcrum.logs import setup_logging

    setup_logging(logging_settings)
    serve(cluster, channel)


class EngineProcess:
    def __init__(self, cluster: Cluster, logging_settings: Logging | None = None):
        self.cluster = cluster
        self.logging_settings = logging_settings or Logging()
        self.process: BaseProcess | None = None
        self.channel: Connection | None = None
        self._reported: dict[str, bool] = {}
        self.backoff = RestartBackoff()
        self.started_at = 0.0
        self.restart_at: float | None = None  # when a dead engine is started again
        self.routers: dict[str, dict[str, object]] = {}  # the engine's last report, per router

    def start(self, now: float = 0.0) -> None:
        # spawn, not fork: the node's event loop must not be copied into the engine
        context = multiprocessing.get_context("spawn")
        engine_end, node_end = context.Pipe()  # pool health one way, router states back
        self.process = context.Process(target=engine_main,
                                       args=(self.cluster, engine_end, self.logging_settings),
                                       name="fulcrum-vrrp", daemon=True)
        self.process.start()
        engine_end.close()
        self.channel = node_end
        self._reported.clear()
        self.started_at, self.restart_at = now, None
        log.info("VRRP engine started, pid %s: %s", self.process.pid,
                 ", ".join(f"{n} (vrid {r.vrid} on {r.interface})"
                           for n, r in self.cluster.virtual_routers.items()))

    def supervise(self, now: float) -> None:
        """Call periodically with a monotonic clock: a dead engine is logged once, with
        the reason when the node can tell, and started again when its delay is over."""
        if self.process is None or self.process.is_alive():
            return
        if self.restart_at is None:
            delay = self.backoff.next_delay(self.started_at, now)
            self.restart_at = now + delay
            code = self.process.exitcode or 0
            reasons = missing_interfaces(self.cluster)
            if reasons:
                why = ": " + "; ".join(reasons)
            else:
                why = f" (killed by signal {-code})" if code < 0 else " (its log says why)"
            log.error("VRRP engine exited with status %s%s; starting it again in %gs", code, why, delay)
        elif now >= self.restart_at:
            if self.channel is not None:
                self.channel.close()
            self.start(now)

    def report_pools(self, pools: dict[str, PoolRuntime]) -> None:
        """Send each tracked pool's health when it changes."""
        if self.channel is None or not self.alive():
            return
        tracked = {t.pool for r in self.cluster.virtual_routers.values() for t in r.track.pools}
        for name in tracked:
            pool = pools.get(name)
            healthy = pool is not None and any(b.healthy for b in pool.backends)
            if self._reported.get(name) != healthy:
                self._reported[name] = healthy
                try:
                    self.channel.send((name, healthy))
                except OSError as err:
                    log.error("VRRP engine unreachable: %s", err)

    def read_reports(self) -> None:
        """Take the engine's router reports that have arrived (never waits)."""
        if self.channel is None:
            return
        try:
            while self.channel.poll():
                kind, body = self.channel.recv()
                if kind == "routers":
                    self.routers = body
        except (EOFError, OSError, ValueError):
            pass  # the engine died: the node's report timer notices and restarts it

    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(STOP_TIMEOUT)
            if self.process.is_alive():
                log.error("VRRP engine did not stop within %gs; killing it", STOP_TIMEOUT)
                self.process.kill()
                self.process.join(STOP_TIMEOUT)
        if self.channel is not None:
            self.channel.close()
        self.process = None
        self.channel = None
