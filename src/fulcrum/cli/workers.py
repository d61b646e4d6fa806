"""Several data-plane processes sharing the listen addresses (SO_REUSEPORT), so the
relay uses every core. The kernel spreads new connections over the workers' sockets.

The supervisor (the process that was started) binds first, so a port in use fails
before anything forks; worker 0 serves those sockets, the others bind their own in
the same SO_REUSEPORT group. Signals to the supervisor go to every worker: SIGHUP
(each worker reloads the file), SIGTERM/SIGINT (each drains and stops), SIGUSR1.
A worker that dies unexpectedly is started again.

State that must be node-wide (connection counts, pen's client table) lives in shared
memory made here before the first fork, and control commands reach every worker
(fulcrum/shared/)."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable

from fulcrum.config.model import Config
from fulcrum.node import Node
from fulcrum.shared import SharedState

log = logging.getLogger("fulcrum.workers")

RESTART_DELAY = 1.0
FORWARDED = (signal.SIGHUP, signal.SIGUSR1)


def supervise(node: Node, reload_config: Callable[[], Config] | None,
              serve: Callable[[Node], int], own_sockets: bool = True) -> int:
    """`own_sockets` False: privileges were dropped after binding (`user`, pen -u), and
    the kernel joins SO_REUSEPORT sockets of one user only, so every worker serves the
    supervisor's sockets (one accept queue shared) instead of binding its own; the
    supervisor keeps them for the workers it restarts."""
    count = node.config.workers
    workers: dict[int, int] = {}  # pid -> worker index
    stopping = False
    sticky = [p.sticky.table_size for p in node.config.pools.values() if p.sticky.mode == "source"]
    shared = SharedState.create(count, max(1024, sum(sticky)))
    node.shared = shared

    def start(index: int, inherit: bool) -> None:
        """Fork worker `index`; with `inherit` it serves the supervisor's sockets."""
        config = node.config
        if reload_config is not None and not inherit:
            try:
                config = reload_config()
            except Exception as err:  # noqa: BLE001 - keep the running configuration
                log.error("worker %d: configuration not reloadable (%s), using the last good one", index, err)
        pid = os.fork()
        if pid == 0:
            for sig in (signal.SIGTERM, signal.SIGINT, *FORWARDED):
                signal.signal(sig, signal.SIG_DFL)
            try:
                worker = node
                if not inherit and not own_sockets:
                    worker.config = config  # the forked copy: its sockets
                elif not inherit:
                    node.close_listeners()
                    worker = Node(config, reuse_port=True)
                    # what run_node set on the supervisor's node: where SIGHUP re-reads, ...
                    for name in ("loader", "default_control_socket", "pen_invocation", "config_path"):
                        setattr(worker, name, getattr(node, name))
                    worker.owns_machine = index == 0  # before binding: pen's port is the first worker's
                    worker.bind_all()
                worker.owns_machine = index == 0
                worker.shared = shared
                shared.bind_worker(index)
                code = serve(worker)
            except BaseException:  # noqa: BLE001 - a worker must never return into the supervisor
                log.exception("worker %d failed", index)
                code = 1
            os._exit(code)
        workers[pid] = index
        log.info("worker %d started, pid %d", index, pid)

    for index in range(count):
        start(index, inherit=index == 0)
    if own_sockets:
        node.close_listeners()  # worker 0 owns them now; an idle copy here would take connections

    def forward(sig: int, _frame: object) -> None:
        nonlocal stopping
        if sig in (signal.SIGTERM, signal.SIGINT):
            stopping = True
            sig = signal.SIGTERM
        for pid in list(workers):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    for sig in (signal.SIGTERM, signal.SIGINT, *FORWARDED):
        signal.signal(sig, forward)

    try:
        return _wait(workers, start, lambda: stopping)
    finally:
        shared.close()


def _wait(workers: dict[int, int], start: Callable[[int, bool], None], stopping: Callable[[], bool]) -> int:
    status = 0
    while workers:
        try:
            pid, wait_status = os.wait()
        except ChildProcessError:
            break
        index = workers.pop(pid, None)
        if index is None:
            continue
        code = os.waitstatus_to_exitcode(wait_status)
        if stopping():
            status = status or (code if code > 0 else 0)
            continue
        log.error("worker %d (pid %d) exited with %d; starting it again", index, pid, code)
        time.sleep(RESTART_DELAY)
        if not stopping():
            start(index, False)
    return status
