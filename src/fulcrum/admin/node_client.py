"""The admin process's line to its node: one JSON request per connection on the node's
private control socket (control/socket.py), so every action runs through the one
command table on the node's loop."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fulcrum.control.commands import COMMANDS

TIMEOUT = 30.0  # a config.apply waits for the reload (binding, sync's first exchange)
LIMIT = 64 * 1024 * 1024  # one reply: a status or a whole configuration
STATUS_TTL = 0.5  # many pages and scrapes within this share one status from the node


class NodeError(Exception):
    """The node refused a command: its message, and the configuration problems if any."""

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.problems = [tuple(p) for p in problems or []]


class NodeUnreachable(Exception):
    """The node did not answer (stopping, or busy beyond the timeout)."""


class NodeClient:
    def __init__(self, path: str):
        self.path = path
        self._status: tuple[float, dict[str, Any]] | None = None
        self._status_lock = asyncio.Lock()

    async def run(self, command: str, args: dict[str, Any] | None = None, by: str | None = None) -> Any:
        request: dict[str, Any] = {"command": command, "args": args or {}}
        if by:
            request["by"] = by
        try:
            async with asyncio.timeout(TIMEOUT):
                reader, writer = await asyncio.open_unix_connection(self.path, limit=LIMIT)
                try:
                    writer.write(json.dumps(request, default=str).encode() + b"\n")
                    await writer.drain()
                    line = await reader.readline()
                finally:
                    writer.close()
        except (OSError, TimeoutError) as err:
            raise NodeUnreachable(f"the node did not answer: {err or type(err).__name__}") from err
        try:
            reply = json.loads(line)
        except ValueError as err:
            raise NodeUnreachable("the node sent no reply") from err
        if not reply.get("ok"):
            raise NodeError(str(reply.get("error")), reply.get("problems"))
        if not COMMANDS[command].reads_only:
            self._status = None  # whatever changed shows at once
        return reply.get("result")

    async def status(self) -> dict[str, Any]:
        """The node's status, shared by requests within STATUS_TTL: a hundred browsers
        polling cost the node's loop no more than one."""
        async with self._status_lock:
            now = time.monotonic()
            if self._status is not None and now - self._status[0] < STATUS_TTL:
                return self._status[1]
            result: dict[str, Any] = await self.run("status")
            self._status = (time.monotonic(), result)
            return result
