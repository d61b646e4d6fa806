"""When is conntrackd started: its control socket takes a client before the daemon has
opened its sync channel (the kernel's backlog accepts the connection), so a conntrackd
that is about to fail on a missing interface "answers" for a moment. Starting must wait
for its "initialization completed" line (or SETTLE seconds alive), so the VRRP engine
stops with the reason instead of running without state replication.

A fake conntrackd: `-s runtime` (the readiness probe) succeeds while the daemon has its
"socket" (a file beside the configuration); the daemon makes it at once, as the real one
binds its socket first, then prints what the real one prints and exits or stays as told."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

import pytest

from fulcrum.cluster.conntrackd import ConntrackDaemon, ConntrackError
from fulcrum.config.cluster import ConntrackSync

FAKE = """#!/bin/sh
up="$2.up"
case "$3" in
    -s) test -e "$up"; exit ;;
    -k) rm -f "$up"; exit 0 ;;
esac
touch "$up"
sleep 0.3
{message}
"""

FAILS = """echo "[ERROR] can't open channel socket: No such device" >&2
echo "[ERROR] conntrackd cannot start, please review your configuration" >&2
rm -f "$up"
exit 1"""

STARTS = """echo "[notice] initialization completed" >&2
exec sleep 30"""


def daemon(tmp_path: Path, message: str) -> ConntrackDaemon:
    command = tmp_path / "conntrackd"
    command.write_text(FAKE.format(message=message))
    command.chmod(0o755)
    return ConntrackDaemon(ConntrackSync(
        interface="eth9", address=ipaddress.ip_address("198.18.1.1"), peer=ipaddress.ip_address("198.18.1.2"),
        state_dir=str(tmp_path / "state"), command=str(command)))


def test_a_conntrackd_that_answers_then_fails_to_initialize_is_not_started(tmp_path: Path) -> None:
    conntrackd = daemon(tmp_path, FAILS)

    async def start() -> None:
        await conntrackd.start()

    with pytest.raises(ConntrackError, match="conntrackd cannot start"):
        asyncio.run(start())
    assert conntrackd.process is None


def test_a_conntrackd_that_initializes_is_started(tmp_path: Path) -> None:
    conntrackd = daemon(tmp_path, STARTS)

    async def start_and_stop() -> bool:
        await conntrackd.start()
        alive = conntrackd.process is not None and conntrackd.process.returncode is None
        await conntrackd.stop()
        return alive

    assert asyncio.run(start_and_stop())
