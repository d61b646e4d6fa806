"""Running a node as a process: foreground or daemon, pidfile, signals, exit codes.

SIGTERM/SIGINT: stop accepting, drain, exit 0. SIGHUP: reload the configuration
(an invalid one is logged and the running one stays). SIGUSR1: status dump."""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from fulcrum.config.errors import ConfigError
from fulcrum.config.model import Config
from fulcrum.kernel.nftables import NftError
from fulcrum.node import Node
from fulcrum.proxy.listener import ListenError
from fulcrum.proxy.loop import loop_factory, loop_name
from fulcrum.proxy.resources import raise_descriptor_limit
from fulcrum.sdnotify import notify

log = logging.getLogger("fulcrum.process")

Loader = Callable[[], Config]


READY_TIMEOUT = 60.0  # --daemon: how long the starting command waits for "serving"
_ready_fd: int | None = None  # the pipe to the waiting parent, in a daemon until it reports


def daemonize() -> None:
    """Classic double fork: detach from the terminal and the session. The command that was
    started waits until the daemon serves (or fails) and exits 0 or 1 accordingly, so an
    init script sees a daemon that died at once."""
    global _ready_fd
    read_end, write_end = os.pipe()
    if os.fork() > 0:
        os.close(write_end)
        os._exit(wait_ready(read_end, READY_TIMEOUT))
    os.close(read_end)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    _ready_fd = write_end


def wait_ready(fd: int, timeout: float) -> int:
    """In the starting process: read the daemon's one-line report; the exit status."""
    import select

    data = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            sys.stderr.write(f"fulcrum: the daemon did not report serving within {timeout:g}s\n")
            return 1
        chunk = os.read(fd, 4096)
        if not chunk:
            sys.stderr.write("fulcrum: the daemon exited before serving (see its log)\n")
            return 1
        data += chunk
    line = data.split(b"\n", 1)[0].decode(errors="replace")
    if line == "ok":
        return 0
    sys.stderr.write(f"fulcrum: {line}\n")
    return 1


def report_ready(error: str | None) -> None:
    """In the daemon: tell the waiting parent "serving" (None) or why not. Once."""
    global _ready_fd
    fd, _ready_fd = _ready_fd, None
    if fd is None:
        return
    try:
        os.write(fd, (f"{error}\n" if error else "ok\n").encode())
    except OSError:
        pass  # the parent gave up waiting
    finally:
        os.close(fd)


def write_pidfile(path: str) -> None:
    tmp = Path(path + ".tmp")
    tmp.write_text(f"{os.getpid()}\n")
    tmp.replace(path)


def run_as(user: str) -> pwd.struct_passwd:
    """The account `user` names, or ConfigError (exit 2) saying it does not exist."""
    try:
        return pwd.getpwnam(user)
    except KeyError:
        raise ConfigError.at("user", f"no user named {user!r} on this machine") from None


def preload_modules() -> None:
    """Import every fulcrum module (and what they import) while still privileged: after
    the switch, the interpreter's files may be unreadable to the new user (a Python under
    /root, say), and a module imported lazily then would fail mid-service."""
    import importlib
    import pkgutil

    import fulcrum

    for module in pkgutil.walk_packages(fulcrum.__path__, "fulcrum."):
        importlib.import_module(module.name)
    # imported on first use: asyncio's default executor; the codec getaddrinfo uses for host names
    for name in ("concurrent.futures.thread", "encodings.idna"):
        importlib.import_module(name)


def drop_privileges(entry: pwd.struct_passwd) -> None:
    """pen -u / `user`: after binding, continue as the user and its primary group only.
    Groups first, then the group, then the user: once the uid is dropped the others
    could no longer be changed. Verified afterwards: a partial drop must not go unnoticed."""
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    if os.getuid() != entry.pw_uid or os.geteuid() != entry.pw_uid or os.getgroups() not in ([], [entry.pw_gid]):
        raise PermissionError(f"still uid {os.geteuid()} after switching to {entry.pw_name}")


def check_pen_port(config: Config, account: pwd.struct_passwd | None) -> None:
    """pen refuses to open its control port as root (`Won't open control port running as
    root; use -u`). fulcrum too, and also with `-u root`: the port is unauthenticated, and
    as root its `write` would reach every file."""
    if config.control.pen_port is None:
        return
    runs_as = account.pw_uid if account is not None else os.geteuid()
    if runs_as == 0:
        raise ConfigError.at("control.pen_port", "refusing to open pen's unauthenticated control port as root; "
                             "give a user to run as (pen -u USER, or `user` in the configuration)")


def run_node(config: Config, reload_config: Loader | None, daemon: bool = False,
             pidfile: str | None = None, user: str | None = None,
             prepare: Callable[[Node], None] | None = None) -> int:
    """Bind, (optionally) detach, write the pidfile, drop privileges, serve until SIGTERM.
    Returns the exit status."""
    user = user or config.user
    try:
        account = run_as(user) if user else None
        check_pen_port(config, account)
    except ConfigError as err:
        for path, reason in err.problems:
            print(f"fulcrum: {path}: {reason}", file=sys.stderr)
        return err.exit_status
    raise_descriptor_limit()  # before anything is opened: the soft limit is for select(2) users
    node = Node(config, reuse_port=config.workers > 1)
    node.loader = reload_config
    node.default_control_socket = True
    if prepare is not None:
        prepare(node)
    try:
        node.bind_all()
    except ListenError as err:
        print(f"fulcrum: {err}", file=sys.stderr)
        return 1
    pidfile = pidfile or config.control.pidfile
    try:
        if pidfile:
            write_pidfile(pidfile)  # still privileged (/run is root's); and seen failing before detaching
        if daemon:
            daemonize()
            if not config.log.file:
                from fulcrum import logs

                # standard error is /dev/null now: log to syslog, and so do the processes
                # the daemon spawns (VRRP engine, admin plane), through the environment
                os.environ[logs.DETACHED_ENV] = "1"
                logs.setup_logging(config.log, debug=logs.debug, syslog=True)
            if pidfile:
                write_pidfile(pidfile)  # the daemon's own pid
    except OSError as err:
        return _fail_start(f"cannot write pidfile {pidfile}: {err.strerror or err}")
    if account is not None:
        try:
            preload_modules()
            drop_privileges(account)
        except OSError as err:
            return _fail_start(f"cannot run as user {user!r}: {err}")
    try:
        if config.workers > 1:
            from fulcrum.cli.workers import supervise

            return supervise(node, reload_config, lambda n: serve(n, reload_config),
                             own_sockets=account is None)
        return serve(node, reload_config)
    finally:
        if pidfile:
            try:
                Path(pidfile).unlink(missing_ok=True)
            except OSError as err:  # written as root, now another user: leave it, say so
                log.warning("cannot remove pidfile %s: %s", pidfile, err.strerror)


def _fail_start(reason: str) -> int:
    """One line on standard error, or to the waiting parent once detached; exit status 1."""
    if _ready_fd is not None:
        report_ready(reason)
    else:
        print(f"fulcrum: {reason}", file=sys.stderr)
    return 1


def serve(node: Node, reload_config: Loader | None) -> int:
    """Run one node's event loop in this process until it is told to stop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(_serve(node, reload_config))


async def _serve(node: Node, reload_config: Loader | None) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reloading: list[asyncio.Task[None]] = []

    async def reload() -> None:
        if node.loader is None:
            log.warning("SIGHUP: nothing to reload from (configuration came from the command line)")
            return
        try:
            await node.reload_from_source()
        except ConfigError:
            pass  # logged by reload_from_source; the running configuration stays

    def on_hup() -> None:
        # Log files first, whatever the reload gives: after logrotate moved them, the
        # old names must be written again (no copytruncate needed).
        reopen_logs(node)
        reloading.append(loop.create_task(reload()))

    def on_usr1() -> None:
        dump_status(node)

    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    loop.add_signal_handler(signal.SIGUSR1, on_usr1)
    try:
        await node.start()
    except (ListenError, ConfigError, NftError) as err:
        reason = str(err).replace("\n", "; ")
        log.error("%s", reason)
        report_ready(f"cannot start: {reason}")
        return 1
    log.info("serving with %s; pid %d", loop_name(), os.getpid())
    report_ready(None)
    notify("READY=1", f"STATUS=serving {len(node.config.services)} service(s)")
    await stop.wait()
    notify("STOPPING=1")
    log.info("stopping: no new connections, draining for up to %gs", node.config.timeouts.drain)
    await node.stop()
    for task in reloading:
        task.cancel()
    return 0


def reopen_logs(node: Node) -> None:
    from fulcrum.accesslog import AccessLogs
    from fulcrum.logs import reopen_log_file

    reopen_log_file()
    for sink in node.observer.sinks:
        if isinstance(sink, AccessLogs):
            sink.reopen()


def dump_status(node: Node) -> None:
    from fulcrum.control.status import status, write_status_file

    # a real object in JSON logs (not JSON inside `message`); key=<json> in text logs
    log.info("status", extra={"fields": {"status": status(node)}})
    if node.config.control.status_file:
        try:
            write_status_file(node, node.config.control.status_file)
        except OSError as err:  # a signal handler: say why in one line, keep serving
            log.error("status page %s not written: %s", node.config.control.status_file, err.strerror or err)
