"""The node's side of the admin plane: a private control socket and the admin process.

Why a process of its own (DESIGN.md: the admin plane never delays a request). The
admin listener does slow things: scrypt for every login (~0.1 s of CPU), TLS
handshakes, template rendering, JSON of the whole configuration, slow or hostile
clients. In the node's event loop each of those would stall every relay for as
long as it runs; in a thread it would still hold the GIL. In its own process it
competes only for a core, like the VRRP engine. The node's loop does only what
needs its live state: one `status` dict or one command per request, through the
same command table as `fulcrum ctl`, over a Unix socket in a private 0700 directory.
bench/admin_isolation.py measures a proxy's latency with a hammered admin page.

With several workers the process runs beside the first worker (like config sync and
the control socket); the status it shows is the whole node's (fulcrum/shared/); config
changes reach every worker (the file is written and the supervisor reloads them all)."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import shutil
import tempfile
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING

from fulcrum.config.admin import Admin
from fulcrum.config.model import Logging
from fulcrum.control.versions import LocalVersions

if TYPE_CHECKING:
    from fulcrum.nodelike import NodeLike

log = logging.getLogger("fulcrum.admin")

READY_TIMEOUT = 30.0  # the process imports aiohttp and Jinja2 and binds its addresses
STOP_TIMEOUT = 5.0
RESTART_DELAY = 1.0  # a changed admin section applies after the reply that changed it


def admin_main(settings: Admin, socket_path: str, node_pid: int, logging_settings: Logging,
               ready: Connection) -> None:
    """The admin process: the node's log settings, then the web server until SIGTERM."""
    from fulcrum.admin.server import serve
    from fulcrum.logs import setup_logging

    setup_logging(logging_settings)
    serve(settings, socket_path, node_pid, ready)


class AdminPlane:
    def __init__(self, settings: Admin, versions: LocalVersions | None):
        self.settings = settings
        self.versions = versions
        self.directory = tempfile.mkdtemp(prefix="fulcrum-admin-")  # mode 0700
        self.socket_path = os.path.join(self.directory, "node.sock")
        self.control: asyncio.AbstractServer | None = None
        self.process: BaseProcess | None = None
        self.error: str | None = None

    async def start(self, node: NodeLike) -> None:
        from fulcrum.control.socket import serve_control_socket

        self.control = await serve_control_socket(node, self.socket_path)
        context = multiprocessing.get_context("spawn")  # no copy of the node's loop
        mine, theirs = context.Pipe(duplex=False)
        self.process = context.Process(
            target=admin_main, name="fulcrum-admin", daemon=True,
            args=(self.settings, self.socket_path, os.getpid(), node.config.log, theirs))
        self.process.start()
        theirs.close()
        # Wait for "listening" (or the bind error) off the loop: the proxy keeps serving.
        answer = await asyncio.get_running_loop().run_in_executor(None, _wait_ready, mine)
        mine.close()
        if answer != "ready":
            self.error = answer
            log.error("admin plane not started: %s", answer)
            await self.stop()
            return
        log.info("admin plane (pid %s) on %s", self.process.pid, ", ".join(
            f"{'https' if self.settings.tls else 'http'}://{address}" for address in self.settings.listen))

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            await asyncio.get_running_loop().run_in_executor(None, _end, process)
        if self.control is not None:
            self.control.close()
            self.control = None
        shutil.rmtree(self.directory, ignore_errors=True)


def _wait_ready(channel: Connection) -> str:
    try:
        if channel.poll(READY_TIMEOUT):
            return str(channel.recv())
        return f"no answer within {READY_TIMEOUT:g}s"
    except (EOFError, OSError):
        return "the admin process exited while starting (see the log)"


def _end(process: BaseProcess) -> None:
    if process.is_alive():
        process.terminate()
        process.join(STOP_TIMEOUT)
        if process.is_alive():
            process.kill()
            process.join(STOP_TIMEOUT)


# -- the node's part ------------------------------------------------------------------------

class AdminPart:
    """The node's admin part: the running AdminPlane (None while off), started, restarted
    (its section changed) or stopped as configurations are applied. The node owns it; only
    it sets `plane`."""

    def __init__(self) -> None:
        self.plane: AdminPlane | None = None
        self._restarts: set[asyncio.Task[None]] = set()
        self._stopping = False

    async def applied(self, node: NodeLike) -> None:
        """After the node started or applied a reload: keep a local version (without config
        sync), and start, restart or stop the admin process."""
        settings: Admin | None = node.config.admin
        plane = self.plane
        if plane is not None and plane.settings == settings:
            if plane.versions is not None and node.config.sync is None:
                plane.versions.applied(node.config)
            return
        if not getattr(node, "owns_machine", True):
            return
        if plane is not None:
            # The change may have come through the admin plane itself: let it answer first.
            self.plane = None
            task = asyncio.get_running_loop().create_task(self._restart(node, plane))
            self._restarts.add(task)
            task.add_done_callback(self._restarts.discard)
            return
        if settings is not None:
            await self._start(node, settings)

    async def _restart(self, node: NodeLike, old: AdminPlane) -> None:
        await asyncio.sleep(RESTART_DELAY)
        await old.stop()
        if node.config.admin is not None and self.plane is None and not self._stopping:
            await self._start(node, node.config.admin)

    async def _start(self, node: NodeLike, settings: Admin) -> None:
        versions = None
        if node.config.sync is None:
            versions = LocalVersions(settings.state_dir, settings.keep)
            versions.applied(node.config)
        plane = self.plane = AdminPlane(settings, versions)
        await plane.start(node)

    async def stop(self) -> None:
        self._stopping = True
        plane, self.plane = self.plane, None
        if plane is not None:
            await plane.stop()
