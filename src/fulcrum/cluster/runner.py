"""The VRRP engine of a node: every virtual router (driver.py) and the tracking
watchers on one asyncio loop.

The engine has its own asyncio loop, in its own thread (`ClusterThread`) or, better, its
own process (`python -m fulcrum.cluster.runner fulcrum.toml`): adverts must never wait
for a busy proxy (DESIGN.md, failure domains)."""

from __future__ import annotations

import asyncio
import logging
import select
import signal
import sys
import threading
import tomllib
from multiprocessing.connection import Connection
from typing import Any

from pydantic import ValidationError

from fulcrum.cluster.conntrackd import ConntrackDaemon, ConntrackError
from fulcrum.cluster.driver import RouterDriver
from fulcrum.cluster.watch import LinkWatcher, Pinger
from fulcrum.config.cluster import Cluster
from fulcrum.config.errors import ConfigError

log = logging.getLogger("fulcrum.cluster")
LOG_FORMAT = "%(asctime)s %(name)s %(message)s"


class EngineError(Exception):
    """The engine cannot run a virtual router as configured (no such interface, no address)."""


class ClusterEngine:
    """All virtual routers of a node on one event loop."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.drivers: dict[str, RouterDriver] = {}
        self._links: LinkWatcher | None = None
        self._pinger: Pinger | None = None
        self._pool_health: dict[str, bool] = {}  # as last told, also before the drivers exist
        self.conntrackd: ConntrackDaemon | None = None

    async def run(self, stop: asyncio.Event) -> None:
        try:
            for name, config in self.cluster.virtual_routers.items():
                try:
                    self.drivers[name] = await RouterDriver.open(name, config)
                except (OSError, LookupError) as err:
                    raise EngineError(f"virtual router {name!r} on {config.interface}: {err}") from err
            await self._start_conntrackd()
            self._watch()
            for driver in self.drivers.values():
                await driver.start()
            await stop.wait()
        finally:
            for watcher in (self._links, self._pinger):
                if watcher is not None:
                    watcher.close()
            # A master leaving sends priority 0 so a backup takes over at once (§6.4.3).
            for driver in self.drivers.values():
                await driver.stop()
            if self.conntrackd is not None:
                await self.conntrackd.stop()

    async def _start_conntrackd(self) -> None:
        """Before any router starts: its first state change already switches conntrackd."""
        sync = self.cluster.conntrack
        if sync is None:
            return
        self.conntrackd = ConntrackDaemon(sync)
        try:
            await self.conntrackd.start()
        except ConntrackError as err:
            raise EngineError(f"cluster.conntrack: {err}") from err
        driver = self.drivers[sync.router or next(iter(self.drivers))]
        driver.before_vips = self.conntrackd.take_over  # commit before the VIPs take traffic
        driver.hooks.actions.append(self.conntrackd.state_changed)

    def _watch(self) -> None:
        routers = self.cluster.virtual_routers.values()
        links = {tracked.name for router in routers for tracked in router.track.interfaces}
        # Each router's own interface too: a master whose link comes back announces again.
        self._links = LinkWatcher(links | {router.interface for router in routers}, self._link_changed)
        for name in links:
            self._tell(f"interface {name}", self._links.state[name])
        targets = {str(ping.target): ping for router in routers for ping in router.track.ping}
        if targets:
            self._pinger = Pinger(list(targets.values()),
                                  lambda address, up: self._tell(f"ping {address}", up))
        for pool, healthy in self._pool_health.items():
            self._tell(f"pool {pool}", healthy)

    def _link_changed(self, name: str, up: bool) -> None:
        self._tell(f"interface {name}", up)
        for driver in self.drivers.values():
            if up and driver.config.interface == name:
                driver.link_up()

    def _tell(self, key: str, healthy: bool) -> None:
        for driver in self.drivers.values():
            if key in driver.tracking:
                driver.tracked(key, healthy)

    def set_pool_health(self, pool: str, healthy: bool) -> None:
        """From the node's health monitor: whether `pool` has a healthy server here.
        Until told otherwise, a tracked pool counts as healthy. Call on the engine's loop."""
        self._pool_health[pool] = healthy
        self._tell(f"pool {pool}", healthy)

    def states(self) -> dict[str, str]:
        return {name: driver.state.value for name, driver in self.drivers.items()}

    def status(self) -> dict[str, dict[str, object]]:
        """Per virtual router: state, fault, effective priority, failed tracked objects."""
        return {name: driver.status() for name, driver in self.drivers.items()}


class ClusterThread:
    """The engine on its own loop in its own thread, for a node that keeps one process."""

    def __init__(self, cluster: Cluster):
        self.engine = ClusterEngine(cluster)
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._thread = threading.Thread(target=self._main, name="fulcrum-vrrp", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def set_pool_health(self, pool: str, healthy: bool) -> None:
        self._loop.call_soon_threadsafe(self.engine.set_pool_health, pool, healthy)

    def stop(self, timeout: float = 15.0) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.engine.run(self._stop))
        except BaseException as err:  # reported to the owner, who decides
            self.error = err
            log.exception("VRRP engine stopped")
        finally:
            self._loop.close()


def load_cluster(path: str) -> Cluster:
    """The `cluster` table of a fulcrum TOML file."""
    with open(path, "rb") as file:
        data: dict[str, Any] = tomllib.load(file)
    if "cluster" not in data:
        raise ConfigError.at("cluster", "required: this file has no cluster section")
    try:
        return Cluster.model_validate(data["cluster"])
    except ValidationError as err:
        raise ConfigError.from_validation(err, ("cluster",)) from err


def serve(cluster: Cluster, pool_health: Connection | None = None) -> None:
    """Run the engine in this process until SIGTERM or SIGINT; then every master sends
    priority 0 and releases its VIPs. A target for a process the node starts, with
    "spawn" so that the child holds no copy of the node's end of the pipe:

        spawn = multiprocessing.get_context("spawn")
        engine_end, node_end = spawn.Pipe()
        spawn.Process(target=serve, args=(config.cluster, engine_end)).start()
        node_end.send(("web", False))  # pool "web" has no healthy server here
        node_end.recv()  # ("routers", {name: status}) when a router's status changed

    When the node's end closes (the node exited or crashed), the engine stops too."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    try:
        asyncio.run(_serve(cluster, pool_health))
    except EngineError as err:
        log.error("VRRP engine cannot start: %s", err)
        raise SystemExit(1) from err


async def _serve(cluster: Cluster, pool_health: Connection | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    engine = ClusterEngine(cluster)
    reporter = None
    if pool_health is not None:
        loop.add_reader(pool_health.fileno(), _read_pool_health, pool_health, engine, stop)
        reporter = loop.create_task(_report_routers(engine, pool_health))
    try:
        await engine.run(stop)
    finally:
        if reporter is not None:
            reporter.cancel()


REPORT_INTERVAL = 0.5  # at most this often the node hears of changed router states


async def _report_routers(engine: ClusterEngine, channel: Connection) -> None:
    """Tell the node each router's status (state, priority, the peer heard) when it changed,
    for the status page and metrics. A send happens only when the pipe has room: a node
    that does not read must never block the engine's loop (adverts come first)."""
    last: object = None
    while True:
        await asyncio.sleep(REPORT_INTERVAL)
        report = engine.status()
        if report == last:
            continue
        if not select.select([], [channel.fileno()], [], 0)[1]:
            continue  # full: try again next time
        try:
            channel.send(("routers", report))
        except OSError:
            return
        last = report


def _read_pool_health(connection: Connection, engine: ClusterEngine, stop: asyncio.Event) -> None:
    try:
        while connection.poll():
            pool, healthy = connection.recv()
            engine.set_pool_health(str(pool), bool(healthy))
    except (EOFError, OSError):
        # The node is gone: without it nothing serves the VIPs, so stop and hand over.
        log.warning("the node closed the pool health channel; stopping")
        asyncio.get_running_loop().remove_reader(connection.fileno())
        stop.set()


def main(argv: list[str] | None = None) -> int:
    """`python -m fulcrum.cluster.runner CONFIG.toml`: the VRRP engine as its own process."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m fulcrum.cluster.runner CONFIG.toml", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    try:
        cluster = load_cluster(args[0])
    except (ConfigError, OSError, tomllib.TOMLDecodeError) as err:
        print(f"{args[0]}: {err}", file=sys.stderr)
        return 2
    serve(cluster)
    return 0


if __name__ == "__main__":
    sys.exit(main())
