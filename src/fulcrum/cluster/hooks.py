"""Notify hooks: the commands of a state change run one after another, each with a
timeout, without blocking the VRRP loop; failures are logged, never raised."""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import subprocess
from collections.abc import Awaitable, Callable

from fulcrum.config.cluster import Notify

log = logging.getLogger("fulcrum.cluster.hooks")

_COMMANDS = {"master": "on_master", "backup": "on_backup", "fault": "on_fault", "stop": "on_stop"}


class HookRunner:
    """Runs hooks in the order of the state changes that caused them."""

    def __init__(self, router: str, notify: Notify):
        self.router = router
        self.notify = notify
        self._last: asyncio.Task[None] | None = None
        # fulcrum's own reactions (conntrackd's switch), run before the user's commands
        self.actions: list[Callable[[str], Awaitable[None]]] = []

    def state_changed(self, state: str) -> None:
        commands: list[str] = getattr(self.notify, _COMMANDS[state])
        if commands or self.actions:
            self._last = asyncio.get_running_loop().create_task(self._after(self._last, state, commands))

    async def wait(self) -> None:
        """Until every hook started so far has finished (each is bounded by its timeout)."""
        if self._last is not None:
            await self._last

    async def _after(self, previous: asyncio.Task[None] | None, state: str, commands: list[str]) -> None:
        if previous is not None:
            await previous
        for action in self.actions:
            try:
                await action(state)
            except Exception:  # a broken action must not stop the hooks after it
                log.exception("%s: action on %s failed", self.router, state)
        env = {**os.environ, "FULCRUM_VROUTER": self.router, "FULCRUM_STATE": state}
        for command in commands:
            await self._run(command, env)

    async def _run(self, command: str, env: dict[str, str]) -> None:
        try:
            process = await asyncio.create_subprocess_exec(
                *shlex.split(command), env=env, stdin=subprocess.DEVNULL)
        except OSError as err:
            log.warning("%s: notify hook %r could not start: %s", self.router, command, err)
            return
        try:
            status = await asyncio.wait_for(process.wait(), self.notify.timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            log.warning("%s: notify hook %r killed after %gs", self.router, command, self.notify.timeout)
            return
        if status != 0:
            log.warning("%s: notify hook %r exited with status %d", self.router, command, status)
