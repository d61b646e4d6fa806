"""Running out of this machine's resources (file descriptors, socket buffers, memory) is
fulcrum's problem, never a server's.

- `local_exhaustion(err)`: is a failed connect/accept our own shortage (EMFILE, ENFILE,
  ENOBUFS, ENOMEM; EADDRNOTAVAIL on connect: no free local port)? Such a failure must
  not count against the server (no passive health failure, no blacklist) and must not
  make the relay try the next server.
- `GATE` (one per process): on a shortage every registered listener stops accepting, so
  new clients wait in the kernel's listen backlog instead of being accepted and dropped;
  as soon as a connection is released (its descriptors freed) accepting resumes, with a
  fallback timer in case descriptors are freed some other way. HAProxy does the same
  (listeners are paused on EMFILE and resumed when a connection ends); asyncio's own
  loop only retries after a second and uvloop's libuv accepts and closes the clients.
- The shortage is logged at most once per LOG_INTERVAL, with how often it happened since.

The HTTP proxy calls the same two functions for its server connects."""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import time
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("fulcrum.resources")

# connect(2)/socket(2)/accept(2) errors that say this machine is short of something
SHORTAGES = {
    errno.EMFILE: "too many open files in this process (raise LimitNOFILE / ulimit -n)",
    errno.ENFILE: "too many open files on this machine (fs.file-max)",
    errno.ENOBUFS: "no socket buffer space",
    errno.ENOMEM: "out of memory",
}
# on connect only: every local port towards that server is in use (ip_local_port_range)
CONNECT_SHORTAGES = {**SHORTAGES, errno.EADDRNOTAVAIL: "no free local port (net.ipv4.ip_local_port_range)"}

LOG_INTERVAL = 5.0  # seconds between two log lines about shortages
RETRY_DELAY = 0.25  # resume accepting after this long even if no connection was released


def local_exhaustion(err: BaseException | None, connecting: bool = True) -> str | None:
    """The shortage `err` reports (a reason for the log), or None for any other error."""
    if not isinstance(err, OSError) or err.errno is None:
        return None
    return (CONNECT_SHORTAGES if connecting else SHORTAGES).get(err.errno)


class Pausable(Protocol):
    """A listener the gate can stop and restart (proxy/listener.py)."""

    def pause_accepting(self) -> None: ...

    def resume_accepting(self) -> bool: ...  # False: could not (still short): try again later


class AcceptGate:
    """Pauses every listener of this process on a shortage; resumes when descriptors free."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.listeners: set[Pausable] = set()
        self.paused = False
        self.clock = clock
        self._timer: asyncio.TimerHandle | None = None
        self._resume_soon: asyncio.Handle | None = None
        self._last_log = float("-inf")
        self._unlogged = 0

    def register(self, listener: Pausable) -> None:
        self.listeners.add(listener)

    def unregister(self, listener: Pausable) -> None:
        self.listeners.discard(listener)

    def exhausted(self, reason: str, where: str) -> None:
        """A shortage happened (`where`: what was being done). Pause accepting; log, rate-limited."""
        self._log(reason, where)
        if not self.paused:
            self.paused = True
            for listener in list(self.listeners):
                listener.pause_accepting()
        self._arm_timer()

    def released(self) -> None:
        """A connection ended: its descriptors are freed once the loop closes them, so
        resume on the next loop iteration."""
        if self.paused and self._resume_soon is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._resume_soon = loop.call_soon(self._resume)

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._timer = loop.call_later(RETRY_DELAY, self._resume)

    def _resume(self) -> None:
        self._resume_soon = None
        if not self.paused:
            return
        if all([listener.resume_accepting() for listener in list(self.listeners)]):
            self.paused = False
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            log.info("accepting connections again")
        else:
            self._arm_timer()  # still short: try again later (or at the next release)

    def _log(self, reason: str, where: str) -> None:
        now = self.clock()
        if now - self._last_log < LOG_INTERVAL:
            self._unlogged += 1
            return
        more = f" ({self._unlogged} more since the last report)" if self._unlogged else ""
        log.error("out of resources while %s: %s; not accepting new connections until some close%s",
                  where, reason, more)
        self._last_log, self._unlogged = now, 0


GATE = AcceptGate()


def watch_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """asyncio's own loop reports a failed accept(2) to the loop's exception handler (and
    retries that socket after a second, once per pending client): turn a shortage there
    into a pause of every listener. (uvloop's libuv handles EMFILE on accept itself; the
    connect side, just after, is where fulcrum sees it.)"""
    if getattr(loop, "_fulcrum_accept_watch", False):
        return
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        shortage = local_exhaustion(context.get("exception"), connecting=False)  # type: ignore[arg-type]
        if shortage is not None and "accept" in str(context.get("message", "")):
            # not now: asyncio is inside its accept loop on that socket, which pausing closes
            loop.call_soon(GATE.exhausted, shortage, "accepting a connection")
        elif "_start_serving" in repr(context.get("handle")) and isinstance(context.get("exception"), ValueError):
            # asyncio's own retry (a timer per failed accept) of a listener socket the gate has
            # closed meanwhile (proxy/listener.py pauses by closing the loop's duplicate): moot
            pass
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    loop._fulcrum_accept_watch = True  # type: ignore[attr-defined]


def raise_descriptor_limit() -> tuple[int, int]:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit, as HAProxy and nginx do:
    the soft limit (often 1024) is a default for programs that use select(2); fulcrum uses
    epoll, and every client costs it two descriptors. Returns (soft, hard) afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (OSError, ValueError) as err:
            log.info("descriptor limit stays at %d: %s", soft, err)
    return soft, hard
