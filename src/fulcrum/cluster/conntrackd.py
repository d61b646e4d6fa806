"""conntrackd, configured and switched by fulcrum (issue 8 §5: state replication for the
kernel `nat`/`fullnat` topologies is conntrackd's job; fulcrum writes no protocol of its own).

Pure part: `render` writes conntrackd.conf(5) from `cluster.conntrack` -- FTFW mode (the
reliable one: messages are acknowledged and resent) over UDP unicast to the peer on the
cluster link, as conntrack-tools' examples/sync/ftfw does it -- and `switch_commands` says
what to run on a VRRP state change, in the order of conntrack-tools'
examples/sync/primary-backup.sh, the script keepalived's notify hooks call:

    master: -c  commit the external cache (the peer's flows) into the kernel table
            -f  flush the internal and external caches
            -R  resynchronise the internal cache with the kernel table
            -B  send a bulk update to the peer
    backup: -t  shorten the kernel's timers, so entries of flows now handled elsewhere go
            -n  ask the master for a complete resynchronisation
    fault:  -t

Edge part: `ConntrackDaemon` starts conntrackd in the foreground as a child of the VRRP
engine (so it stops with it), waits (bounded) until it answers on its control socket, runs
the switch commands each with a timeout, and stops it.

The master's commands run *before* the VIPs are added (the driver queues `take_over` on
its netlink worker ahead of them), not after as a notify script would: a packet of an old
flow that reached the new master before the commit would create a fresh, untranslated
conntrack entry, the committed one could not replace it, and the client would reset the
connection. Measured with tests/netns/kernel_failover.py and a CPU hog beside it:
committing after the VIPs broke 26 of 50 NAT streams in one of three rounds; committing
before, none in eight."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from fulcrum.config.cluster import ConntrackSync

log = logging.getLogger("fulcrum.cluster.conntrackd")

START_TIMEOUT = 5.0  # until conntrackd has initialized and answers on its control socket
# conntrackd binds its control socket before it opens the sync channel, and a client that
# connects in between is answered with success by the kernel's backlog alone: "answers" is
# not "started". It prints this line once every channel is open (console mode, stderr).
INITIALIZED = b"initialization completed"
SETTLE = 1.0  # a conntrackd that never prints it: alive and answering this long counts as started
COMMAND_TIMEOUT = 5.0  # each `conntrackd -C CONF -x` client command
STOP_TIMEOUT = 5.0

SWITCH = {
    "master": (("-c",), ("-f",), ("-R",), ("-B",)),
    "backup": (("-t",), ("-n",)),
    "fault": (("-t",),),
}


@dataclass(frozen=True)
class Paths:
    config: str
    socket: str
    lock: str
    errors: str  # the daemon's stderr: read for the reason when it does not start


def paths(sync: ConntrackSync) -> Paths:
    base = sync.state_dir.rstrip("/")
    return Paths(f"{base}/conntrackd.conf", f"{base}/conntrackd.ctl", f"{base}/conntrackd.lock",
                 f"{base}/conntrackd.err")


def render(sync: ConntrackSync) -> str:
    """conntrackd.conf for this node. Flows of the cluster link itself and of loopback are
    not replicated (Address Ignore); every TCP and UDP flow through the balancer is."""
    where = paths(sync)
    family = f"IPv{sync.address.version}"
    loopback = "127.0.0.1" if sync.address.version == 4 else "::1"
    return f"""\
# Written by fulcrum from cluster.conntrack; changes here are overwritten on start.
Sync {{
    Mode FTFW {{
        DisableExternalCache off
        StartupResync on
    }}
    UDP {{
        {family}_address {sync.address}
        {family}_Destination_Address {sync.peer}
        Port {sync.port}
        Interface {sync.interface}
        SndSocketBuffer 1249280
        RcvSocketBuffer 1249280
        Checksum on
    }}
}}
General {{
    HashSize 32768
    HashLimit 131072
    LogFile off
    Syslog off
    LockFile {where.lock}
    UNIX {{
        Path {where.socket}
    }}
    NetlinkBufferSize 2097152
    NetlinkBufferSizeMaxGrowth 8388608
    Filter From Userspace {{
        Protocol Accept {{
            TCP
            UDP
        }}
        Address Ignore {{
            {family}_address {loopback}
            {family}_address {sync.address}
            {family}_address {sync.peer}
        }}
    }}
}}
"""


def switch_commands(sync: ConntrackSync, state: str) -> list[list[str]]:
    """The client commands for a VRRP state (`master`, `backup`, `fault`); none for `stop`."""
    config = paths(sync).config
    return [[sync.command, "-C", config, *args] for args in SWITCH.get(state, ())]


class ConntrackError(Exception):
    """conntrackd could not be started."""


class ConntrackDaemon:
    """One conntrackd, a child of the VRRP engine."""

    def __init__(self, sync: ConntrackSync):
        self.sync = sync
        self.paths = paths(sync)
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        directory = Path(self.sync.state_dir)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        Path(self.paths.config).write_text(render(self.sync))
        if await self._answers():
            # left by a run that was killed (the socket is fulcrum's own): replace it
            log.warning("a conntrackd left by an earlier run answers on %s; stopping it", self.paths.socket)
            await self.run([self.sync.command, "-C", self.paths.config, "-k"])
            if not await self._gone():
                raise ConntrackError(f"the conntrackd on {self.paths.socket} does not stop (conntrackd -k)")
        # conntrackd refuses to start while its lock file exists; nothing answers on the
        # socket, so the lock was left by a crashed run (primary-backup.sh does the same).
        for stale in (self.paths.lock, self.paths.socket):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(stale)
        try:
            with open(self.paths.errors, "wb") as errors:
                self.process = await asyncio.create_subprocess_exec(
                    self.sync.command, "-C", self.paths.config, stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=errors, start_new_session=True)
        except OSError as err:
            raise ConntrackError(f"{self.sync.command}: {err}") from err
        loop = asyncio.get_running_loop()
        spawned = loop.time()
        deadline = spawned + START_TIMEOUT
        while loop.time() < deadline:
            if self.process.returncode is not None:
                break
            if (self._initialized() or loop.time() - spawned >= SETTLE) \
                    and await self._answers(timeout=max(0.5, deadline - loop.time())) \
                    and self.process.returncode is None:
                log.info("conntrackd started, pid %d: FTFW %s -> %s port %d on %s", self.process.pid,
                         self.sync.address, self.sync.peer, self.sync.port, self.sync.interface)
                return
            await asyncio.sleep(0.05)
        reason = await self._failure()
        await self.stop()
        raise ConntrackError(f"conntrackd did not start within {START_TIMEOUT:g}s: {reason}")

    def _initialized(self) -> bool:
        try:
            return INITIALIZED in Path(self.paths.errors).read_bytes()
        except OSError:
            return False

    async def _failure(self) -> str:
        if self.process is None or self.process.returncode is None:
            return "it does not answer on its control socket"
        with contextlib.suppress(OSError):
            lines = [line for line in Path(self.paths.errors).read_text(errors="replace").splitlines()
                     if line.strip()]
            if lines:
                return lines[-1].strip()
        return f"it exited with status {self.process.returncode}"

    async def _gone(self) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_TIMEOUT
        while loop.time() < deadline:
            if not await self._answers():
                return True
            await asyncio.sleep(0.05)
        return False

    async def _answers(self, timeout: float = COMMAND_TIMEOUT) -> bool:
        return await self.run([self.sync.command, "-C", self.paths.config, "-s", "runtime"], quiet=True,
                              timeout=timeout)

    async def run(self, argv: list[str], quiet: bool = False, timeout: float = COMMAND_TIMEOUT) -> bool:
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except OSError as err:
            if not quiet:
                log.error("%s: %s", " ".join(argv), err)
            return False
        try:
            _, stderr = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            log.error("%s: killed after %gs", " ".join(argv), timeout)
            return False
        if process.returncode != 0 and not quiet:
            log.error("%s: exit status %d: %s", " ".join(argv), process.returncode,
                      stderr.decode(errors="replace").strip())
        return process.returncode == 0

    def take_over(self) -> None:
        """The master's commands, blocking: run on the driver's netlink worker before the
        VIPs are added, so no packet of an old flow arrives before its entry."""
        if self.process is None:
            return
        for argv in switch_commands(self.sync, "master"):
            try:
                result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                        timeout=COMMAND_TIMEOUT, check=False)
            except (OSError, subprocess.TimeoutExpired) as err:
                log.error("%s: %s", " ".join(argv), err)
                continue
            if result.returncode != 0:
                log.error("%s: exit status %d: %s", " ".join(argv), result.returncode,
                          result.stderr.decode(errors="replace").strip())
        log.info("conntrackd switched for master (before the VIPs)")

    async def state_changed(self, state: str) -> None:
        """Switch conntrackd for backup and fault, as primary-backup.sh does (master: see
        `take_over`)."""
        if self.process is None or state == "master":
            return
        if state == "backup" and self.process.returncode is not None:
            log.warning("conntrackd exited (status %s); starting it again", self.process.returncode)
            try:
                await self.start()
            except ConntrackError as err:
                log.error("%s", err)
                return
        commands = switch_commands(self.sync, state)
        for argv in commands:
            await self.run(argv)
        if commands:
            log.info("conntrackd switched for %s", state)

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            log.error("conntrackd did not stop within %gs; killing it", STOP_TIMEOUT)
            process.kill()
            await process.wait()
