"""Running a node as a process: foreground or daemon, pidfile, signals, exit codes.

SIGTERM/SIGINT: stop accepting, drain, exit 0. SIGHUP: reload the configuration
(an invalid one is logged and the running one stays). SIGUSR1: status dump."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from fulcrum.config.errors import ConfigError
from fulcrum.config.model import Config
from fulcrum.node import Node
from fulcrum.proxy.listener import ListenError
from fulcrum.proxy.loop import loop_factory, loop_name

log = logging.getLogger("fulcrum.process")

Loader = Callable[[], Config]


def daemonize() -> None:
    """Classic double fork: detach from the terminal and the session."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)


def write_pidfile(path: str) -> None:
    tmp = Path(path + ".tmp")
    tmp.write_text(f"{os.getpid()}\n")
    tmp.replace(path)


def drop_privileges(user: str) -> None:
    """pen -u: after binding, continue as `user` (and its primary group)."""
    import pwd

    entry = pwd.getpwnam(user)
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)


def run_node(config: Config, reload_config: Loader | None, daemon: bool = False,
             pidfile: str | None = None, user: str | None = None,
             prepare: Callable[[Node], None] | None = None) -> int:
    """Bind, (optionally) detach, serve until SIGTERM. Returns the exit status."""
    node = Node(config, reuse_port=config.workers > 1)
    if prepare is not None:
        prepare(node)
    try:
        node.bind_all()
    except ListenError as err:
        print(f"fulcrum: {err}", file=sys.stderr)
        return 1
    if user:
        try:
            drop_privileges(user)
        except (KeyError, PermissionError) as err:
            print(f"fulcrum: cannot run as user {user!r}: {err}", file=sys.stderr)
            return 1
    if daemon:
        daemonize()
    pidfile = pidfile or config.control.pidfile
    if pidfile:
        write_pidfile(pidfile)
    try:
        if config.workers > 1:
            from fulcrum.cli.workers import supervise

            return supervise(node, reload_config, lambda n: serve(n, reload_config))
        return serve(node, reload_config)
    finally:
        if pidfile:
            Path(pidfile).unlink(missing_ok=True)


def serve(node: Node, reload_config: Loader | None) -> int:
    """Run one node's event loop in this process until it is told to stop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(_serve(node, reload_config))


async def _serve(node: Node, reload_config: Loader | None) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reloading: list[asyncio.Task[None]] = []

    async def reload() -> None:
        if reload_config is None:
            log.warning("SIGHUP: nothing to reload from (configuration came from the command line)")
            return
        try:
            config = reload_config()
            await node.reload(config)
        except (ConfigError, ListenError) as err:
            log.error("reload rejected, keeping the running configuration: %s", str(err).replace("\n", "; "))

    def on_hup() -> None:
        reloading.append(loop.create_task(reload()))

    def on_usr1() -> None:
        dump_status(node)

    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    loop.add_signal_handler(signal.SIGUSR1, on_usr1)
    try:
        await node.start()
    except ListenError as err:
        log.error("%s", err)
        return 1
    log.info("serving with %s; pid %d", loop_name(), os.getpid())
    await stop.wait()
    log.info("stopping: no new connections, draining for up to %gs", node.config.timeouts.drain)
    await node.stop()
    for task in reloading:
        task.cancel()
    return 0


def dump_status(node: Node) -> None:
    from fulcrum.control.status import status, write_status_file

    log.info("status %s", json.dumps(status(node), sort_keys=True))
    if node.config.control.status_file:
        write_status_file(node, node.config.control.status_file)
