"""The node's handle on its VRRP engine, which runs in a process of its own
(DESIGN.md, failure domains: adverts are never late because the proxy is busy).

The node tells the engine when a pool has no healthy server from here (tracked
pools lower the priority or fault the router); the engine owns VIPs and adverts.
Stopping the handle sends SIGTERM: every master advertises priority 0 and releases
its VIPs before the engine exits."""

from __future__ import annotations

import logging
import multiprocessing
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from fulcrum.balance.pool import PoolRuntime
from fulcrum.cluster.config import Cluster
from fulcrum.config.model import Logging

log = logging.getLogger("fulcrum.cluster")

STOP_TIMEOUT = 10.0


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

    def start(self) -> None:
        # spawn, not fork: the node's event loop must not be copied into the engine
        context = multiprocessing.get_context("spawn")
        engine_end, node_end = context.Pipe(duplex=False)
        self.process = context.Process(target=engine_main,
                                       args=(self.cluster, engine_end, self.logging_settings),
                                       name="fulcrum-vrrp", daemon=True)
        self.process.start()
        engine_end.close()
        self.channel = node_end
        self._reported.clear()
        log.info("VRRP engine started, pid %s: %s", self.process.pid,
                 ", ".join(f"{n} (vrid {r.vrid} on {r.interface})"
                           for n, r in self.cluster.virtual_routers.items()))

    def report_pools(self, pools: dict[str, PoolRuntime]) -> None:
        """Send each tracked pool's health when it changes."""
        if self.channel is None:
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
