"""One machine's fulcrum: builds the planes from a Config and applies reloads as diffs.

A reload keeps every listening socket whose address is still configured, keeps the
live state of servers that are still configured (health, connection counts), and
leaves established connections on the context they were accepted with.

The node is made of parts with one lifecycle (`Part`: start, reload, stop), listed once
in `Node._parts`: `start` starts them in that order, `reload` applies the new
configuration to each in the same order, `stop` stops them in reverse. The top of the
house: it may import every other part, and nothing but cli imports it
(src/fulcrum/README.md)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fulcrum.balance.pool import PoolRuntime
from fulcrum.config.kernel import is_kernel
from fulcrum.config.model import Config
from fulcrum.kernel.part import POLL as KERNEL_POLL
from fulcrum.kernel.part import KernelPart
from fulcrum.observe import Observer
from fulcrum.proxy.context import ConnectionCounter, ServiceContext
from fulcrum.proxy.listener import Listener, bind
from fulcrum.proxy.tcp import ClientSide, sweep_idle

if TYPE_CHECKING:  # the parts are imported when a configuration has them
    from fulcrum.admin.plane import AdminPart, AdminPlane
    from fulcrum.cluster.process import EngineProcess
    from fulcrum.cluster.sync import ConfigSync
    from fulcrum.health.monitor import HealthMonitor
    from fulcrum.importers.pen import PenInvocation
    from fulcrum.shared import SharedState

log = logging.getLogger("fulcrum.node")

EndpointKey = tuple[str, int]

# How often tracked pools' health is passed to the VRRP engine (only changes are sent).
POOL_REPORT_INTERVAL = 0.2


async def _nothing(*_: object) -> None:
    pass


@dataclass(frozen=True)
class Part:
    """One part of a node: what starting it, applying a new configuration to it and
    stopping it do. Each step is idempotent where the part may be absent (a section the
    configuration does not have is started as nothing and stopped as nothing)."""

    name: str
    start: Callable[[Config], Awaitable[None]]
    reload: Callable[[Config], Awaitable[None]]
    stop: Callable[[], Awaitable[None]]


class Node:
    def __init__(self, config: Config, reuse_port: bool = False):
        self.config = config
        self.reuse_port = reuse_port
        self.pools: dict[str, PoolRuntime] = {}
        self.contexts: dict[str, ServiceContext] = {}
        self.listeners: dict[EndpointKey, Listener] = {}
        self.node_connections = ConnectionCounter(per_worker(config.max_connections, config.workers))
        self._service_counters: dict[str, ConnectionCounter] = {}
        self.observer = Observer(wall_clock=time.time)  # access logs, metrics and status read it
        self.health: HealthMonitor | None = None
        self.penctl: asyncio.Server | None = None
        self._penctl_sock: socket.socket | None = None  # bound by bind_all, served by _start_control
        self.control_socket: asyncio.AbstractServer | None = None
        self.engine: EngineProcess | None = None  # when the config has a cluster section
        self.kernel = KernelPart()  # nat, fullnat and dsr services (first worker only)
        self.owns_machine = True  # False in the other worker processes: one VRRP engine, sync and control socket per machine
        self.shared: SharedState | None = None  # with workers > 1 (counters, client table, commands)
        self._commands: socket.socket | tuple[socket.socket, asyncio.TimerHandle] | None = None  # in workers after the first: where control commands arrive
        self.pen_invocation: PenInvocation | None = None  # set by `fulcrum pen`: -X, -F for the control port
        self.sync: ConfigSync | None = None  # when the config has a sync section
        self.config_path: str | None = None  # the file a synced change is written to
        self.loader: Callable[[], Config] | None = None  # reads the source again (reload.py)
        self.source_config = config  # the source as last read: runtime changes are the difference
        self.default_control_socket = False  # `fulcrum run` sets it: control.socket unset = default place
        self._admin: AdminPart | None = None  # made when a config first has an admin section (admin/plane.py)
        self.started_at = time.time()  # for status: uptime
        self.reload_results = {"applied": 0, "rejected": 0}  # re-reads of the source (reload.py), for metrics
        self._sweepers: list[asyncio.TimerHandle] = []
        self._stopping = False
        self._drain: float | None = None  # stop's drain, for the services part
        # Started in this order, reloaded in this order, stopped in reverse: the pools
        # before what reads them, the data planes before the control that acts on them,
        # the VRRP engine (which claims the VIPs) only once the services serve, sync
        # and the admin plane last. Stopping hands the VIPs over before the listeners close.
        self._parts: list[Part] = [
            Part("pools", self._apply_pools, self._apply_pools, _nothing),
            Part("health", self._apply_health, self._apply_health, self._stop_health),
            Part("kernel", self._apply_kernel, self._apply_kernel, self.kernel.stop),
            Part("services", self._apply_services, self._apply_services, self._stop_services),
            # the control socket and pen's port are opened at start only (a reload
            # changes neither: they were bound before privileges were dropped)
            Part("control", self._start_control, _nothing, self._stop_control),
            Part("cluster", self._apply_cluster, self._apply_cluster, self._stop_cluster),
            Part("sweeps", self._schedule_sweeps, self._schedule_sweeps, self._cancel_sweeps),
            Part("sync", self._apply_sync, self._apply_sync, self._stop_sync),
            Part("admin", self._apply_admin, self._apply_admin, self._stop_admin),
        ]

    # -- the interface control commands use ------------------------------------------

    @property
    def connections(self) -> int:
        return self.node_connections.current

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    # -- start ---------------------------------------------------------------------

    def bind_all(self) -> None:
        """Bind every listen address first, so a port in use fails before anything runs
        (and before privileges are dropped: the pen control port is bound here too)."""
        self._bind_missing(self.config)
        endpoint = self.config.control.pen_port
        if endpoint is not None and self.penctl is None and self._penctl_sock is None and self.owns_machine:
            self._penctl_sock = bind(endpoint, 16)  # one per node: the first worker serves it

    def _bind_missing(self, config: Config) -> None:
        """Bind the listen addresses of `config` that have no socket yet: all of them or
        none (on failure the new ones are closed and the error raised, nothing changed)."""
        fresh: dict[EndpointKey, Listener] = {}
        try:
            for service in config.services.values():
                if is_kernel(service):
                    continue  # the kernel takes its packets; no socket
                for endpoint in service.listen:
                    key = (endpoint.host, endpoint.port)
                    if key not in self.listeners and key not in fresh:
                        fresh[key] = Listener(endpoint, bind(endpoint, service.backlog, self.reuse_port))
        except Exception:
            for listener in fresh.values():
                listener.close()
            raise
        self.listeners.update(fresh)

    def close_listeners(self) -> None:
        """Close this process's copies of the listening sockets (before serving)."""
        for listener in self.listeners.values():
            listener.close()
        self.listeners.clear()

    async def start(self) -> None:
        from fulcrum.reload import preflight

        prepared = preflight(self.config, daemon_log=False)  # files first: a bad one fails the start
        try:
            self.bind_all()  # no-op for addresses bound already (run_node binds before forking)
        except BaseException:
            prepared.discard()
            raise
        prepared.commit(self)
        for part in self._parts:
            await part.start(self.config)
        log.info("fulcrum started: %d service(s), %d listener(s)", len(self.contexts), len(self.listeners))

    async def _apply_pools(self, config: Config) -> None:
        # the node-wide limit is set here at start too: a restarted worker is handed a
        # configuration re-read since this node was made (cli/workers.py)
        self.node_connections.limit = per_worker(config.max_connections, config.workers)
        for name in list(self.pools):
            if name not in config.pools:
                del self.pools[name]
        for name, pool in config.pools.items():
            if name in self.pools:
                self.pools[name].apply(pool)
            else:
                self.pools[name] = PoolRuntime(name, pool, self.shared)

    async def _apply_health(self, _: Config) -> None:
        from fulcrum.health.monitor import HealthMonitor

        if self.health is None:
            self.health = HealthMonitor(self.pools)
            self.health.start()
        else:
            self.health.update(self.pools)

    async def _stop_health(self) -> None:
        if self.health is not None:
            await self.health.stop()

    async def _apply_cluster(self, config: Config) -> None:
        """Start, restart (when its section changed) or stop the VRRP engine process."""
        if not self.owns_machine:
            return
        current = self.engine.cluster if self.engine is not None else None
        if config.cluster == current and (self.engine is None or self.engine.alive()):
            return
        if self.engine is not None:
            await self._stop_cluster()
        if config.cluster is not None:
            from fulcrum.cluster.process import EngineProcess

            self.engine = EngineProcess(config.cluster, config.log)
            self.engine.start(asyncio.get_running_loop().time())
            self.engine.report_pools(self.pools)

    async def _stop_cluster(self) -> None:
        """Stop the engine off the event loop: its hand-over must not stall the proxy."""
        engine, self.engine = self.engine, None
        if engine is not None:
            await asyncio.get_running_loop().run_in_executor(None, engine.stop)

    async def _apply_services(self, config: Config) -> None:
        wanted: dict[EndpointKey, str] = {}
        for name, service in config.services.items():
            if is_kernel(service):
                continue
            counter = self._service_counters.setdefault(name, ConnectionCounter())
            counter.limit = per_worker(service.max_connections, config.workers)
            old = self.contexts.get(name)
            ctx = ServiceContext(
                name=name, config=service, pool=self.pools[service.pool],
                timeouts=config.service_timeouts(name), node_connections=self.node_connections,
                connections=counter, health=self.health, pools=self.pools,
                open_connections=old.open_connections if old is not None else set(), observer=self.observer,
            )
            self.contexts[name] = ctx
            for endpoint in service.listen:
                wanted[(endpoint.host, endpoint.port)] = name
        for name in list(self.contexts):
            if name not in config.services or is_kernel(config.services[name]):
                del self.contexts[name]
                self._service_counters.pop(name, None)
        for key in list(self.listeners):
            if key not in wanted:
                log.info("closing listener %s", self.listeners[key].endpoint)
                self.listeners.pop(key).close()
        for key, name in wanted.items():
            ctx = self.contexts[name]
            listener = self.listeners[key]  # bound by bind_all or reload
            factory = _protocol_factory(ctx)
            if listener.factory is None:  # never started (a paused one keeps its factory)
                await listener.start(factory, ctx.config.backlog)
            else:
                listener.swap(factory)

    async def _apply_kernel(self, config: Config) -> None:
        if self.owns_machine:
            await self.kernel.apply(config, self.pools)

    async def _start_control(self, _: Config) -> None:
        if self.shared is not None and self._commands is None:
            from fulcrum.control.commands import execute
            from fulcrum.shared import commands, totals

            if self.owns_machine:  # the other workers' totals, for node-wide status
                self._commands = totals.listen(self)
            else:  # control commands carried from the first worker; totals sent to it
                self._commands = (commands.listen(self, execute), totals.publish(self))
        path = self.config.control.socket
        if path != "off" and self.control_socket is None and self.owns_machine:
            from fulcrum.control.socket import serve_control_socket, serve_default_control_socket

            if path:
                self.control_socket = await serve_control_socket(self, path)
            elif self.default_control_socket:  # `fulcrum run`: on by default
                self.control_socket = await serve_default_control_socket(self)
        endpoint = self.config.control.pen_port
        if endpoint is not None and self.penctl is None and self.owns_machine:
            from fulcrum.control.penctl import serve_penctl

            sock, self._penctl_sock = self._penctl_sock, None
            self.penctl = await serve_penctl(self, endpoint.host, endpoint.port,
                                             invocation=self.pen_invocation, sock=sock)

    async def _cancel_sweeps(self) -> None:
        for handle in self._sweepers:
            handle.cancel()
        self._sweepers = []

    async def _schedule_sweeps(self, _: Config) -> None:
        loop = asyncio.get_running_loop()
        await self._cancel_sweeps()

        def sweep(ctx_name: str, every: float) -> None:
            ctx = self.contexts.get(ctx_name)
            if ctx is None or self._stopping:
                return
            sweep_idle(ctx, 4)
            self._sweepers.append(loop.call_later(every, sweep, ctx_name, every))

        if self.engine is not None:
            def report() -> None:
                if self.engine is None or self._stopping:
                    return
                # without its engine this node would hold no VIP: restarted, with backoff
                self.engine.supervise(loop.time())
                self.engine.read_reports()
                self.engine.report_pools(self.pools)
                self._sweepers.append(loop.call_later(POOL_REPORT_INTERVAL, report))

            self._sweepers.append(loop.call_later(POOL_REPORT_INTERVAL, report))
        if self.kernel.plane is not None:
            def push() -> None:  # servers' states to the kernel plane
                if self.kernel.plane is None or self._stopping:
                    return
                loop.create_task(self.kernel.tick(self.pools))
                self._sweepers.append(loop.call_later(KERNEL_POLL, push))

            self._sweepers.append(loop.call_later(KERNEL_POLL, push))
        for name, ctx in self.contexts.items():
            if ctx.timeouts.idle:
                every = ctx.timeouts.idle / 4
                self._sweepers.append(loop.call_later(every, sweep, name, every))

    async def _apply_sync(self, _: Config) -> None:
        """Config sync follows every applied configuration (cluster/sync.py)."""
        if self.config.sync is not None or self.sync is not None:
            from fulcrum.cluster.sync import sync_applied

            self.sync = await sync_applied(self, self.sync)

    @property
    def admin(self) -> AdminPlane | None:
        """The running admin plane (None while off)."""
        return None if self._admin is None else self._admin.plane

    async def _apply_admin(self, _: Config) -> None:
        """The admin plane (its own process) follows every applied configuration."""
        if self._admin is None and self.config.admin is not None:
            from fulcrum.admin.plane import AdminPart

            self._admin = AdminPart()
        if self._admin is not None:
            await self._admin.applied(self)

    async def _stop_sync(self) -> None:
        if self.sync is not None:
            await self.sync.stop()
            self.sync = None

    async def _stop_admin(self) -> None:
        if self._admin is not None:
            await self._admin.stop()

    # -- reload --------------------------------------------------------------------

    async def reload(self, config: Config) -> None:
        """Apply a new configuration without dropping listening sockets or connections.
        Everything it needs is read, opened and bound first (reload.py): on any failure
        ReloadError is raised and nothing has changed."""
        from fulcrum.proxy.listener import ListenError
        from fulcrum.reload import ReloadError, preflight

        prepared = preflight(config, current=self.config)
        try:
            self._bind_missing(config)
        except ListenError as err:
            prepared.discard()
            raise ReloadError([("listen", str(err))]) from err
        prepared.commit(self)
        self.config = config
        for part in self._parts:
            await part.reload(config)
        log.info("configuration reloaded: %d service(s), %d pool(s)", len(config.services), len(config.pools))

    async def reload_from_source(self) -> dict[str, Any]:
        """Re-read the file (SIGHUP, `fulcrum ctl reload`), keeping runtime changes."""
        from fulcrum.reload import reload_from_source

        return await reload_from_source(self)

    # -- stop ----------------------------------------------------------------------

    async def stop(self, drain: float | None = None) -> None:
        """Stop accepting, let established connections finish within `drain`, then close:
        the parts in reverse order."""
        self._stopping = True  # the sweeps' timers fire as nothing from now on
        self._drain = drain
        for part in reversed(self._parts):
            await part.stop()
        log.info("fulcrum stopped")

    async def _stop_control(self) -> None:
        if self.penctl is not None:
            self.penctl.close()
        if self.control_socket is not None:
            self.control_socket.close()

    async def _stop_services(self) -> None:
        for listener in self.listeners.values():
            listener.close()
        drain = self.config.timeouts.drain if self._drain is None else self._drain
        for ctx in self.contexts.values():
            for conn in list(ctx.open_connections):
                shutdown = getattr(conn, "shutdown", None)  # http: close idle, finish in flight
                if shutdown is not None:
                    shutdown()
        live = [r for ctx in self.contexts.values() for r in ctx.open_connections]
        if live:
            log.info("draining %d connection(s) for up to %gs", len(live), drain)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + drain
            while loop.time() < deadline and any(ctx.open_connections for ctx in self.contexts.values()):
                await asyncio.sleep(0.05)
            for ctx in self.contexts.values():
                for conn in list(ctx.open_connections):
                    conn.abort()  # type: ignore[attr-defined]  # tcp ClientSide or http HttpConnection


def per_worker(limit: int, workers: int) -> int:
    """Each of `workers` processes enforces its share of a connection limit (0 = none)."""
    return -(-limit // workers) if limit else 0


def _protocol_factory(ctx: ServiceContext) -> Callable[[], asyncio.Protocol]:
    if ctx.config.mode == "http":
        from fulcrum.proxy.http import http_protocol_factory

        return http_protocol_factory(ctx)
    return lambda: ClientSide(ctx)
