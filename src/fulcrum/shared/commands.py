"""Control commands reach every worker: the first worker serves the control socket and
pen's control port and runs each command there (its answer is the answer); a command
that changes something is then carried to the other workers, which apply the same
change. A config command carries the resulting configuration (every worker then runs
the same model), a runtime command its name and arguments.

Each other worker listens on a Unix datagram socket in the supervisor's private
directory (mode 0700: only this user's processes can write to it). Datagrams are
JSON; one that cannot be applied is logged by the worker that received it."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fulcrum.shared import required

if TYPE_CHECKING:
    from fulcrum.nodelike import NodeLike

# control/commands.py's `execute`, handed in by the node: the command table sits above
# this module, which only carries its calls between workers.
Execute = Callable[..., Awaitable[Any]]

log = logging.getLogger("fulcrum.workers")

# Commands that only read (their answer comes from the first worker, with node-wide
# counters): nothing to carry.
READ_ONLY = frozenset({"status", "servers", "status.write", "config.write"})


def _path(directory: str, index: int) -> str:
    return os.path.join(directory, f"worker-{index}.sock")


def listen(node: NodeLike, execute: Execute) -> socket.socket:
    """In worker N > 0: apply what the first worker carries here; `execute(node, name,
    args, carry=False)` runs a carried runtime command (control/commands.py)."""
    shared = required(node.shared)
    path = _path(shared.directory, shared.index)
    try:
        os.unlink(path)  # left by the worker of this index that died
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    loop.add_reader(sock.fileno(), _receive, node, sock, execute)
    return sock


def _receive(node: NodeLike, sock: socket.socket, execute: Execute) -> None:
    while True:
        try:
            data = sock.recv(1 << 20)
        except BlockingIOError:
            return
        asyncio.get_running_loop().create_task(_apply(node, data, execute))


async def _apply(node: NodeLike, data: bytes, execute: Execute) -> None:
    from fulcrum.config.load import load_dict

    try:
        message = json.loads(data)
        if "config" in message:
            await _settle(node.reload(load_dict(message["config"])))
        else:
            await execute(node, message["command"], message.get("args") or {}, carry=False)
    except Exception as err:  # noqa: BLE001 - a worker keeps serving; the log says what failed
        log.error("worker %d: could not apply %s from the first worker: %s", required(node.shared).index,
                  data[:200].decode(errors="replace"), err)


async def _settle(value: Any) -> Any:
    return await value if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future) else value


def carry(node: NodeLike, name: str, args: dict[str, Any], config: Any = None) -> None:
    """In the first worker, after `name` succeeded: the same change in every other worker."""
    shared = getattr(node, "shared", None)
    if shared is None or not node.owns_machine or name in READ_ONLY:
        return
    if config is not None:
        message = {"config": config.model_dump(mode="json")}
    else:
        message = {"command": name, "args": args}
    data = json.dumps(message, default=str).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        for index in range(1, shared.workers):
            try:
                sender.sendto(data, _path(shared.directory, index))
            except OSError as err:  # a worker being restarted reads the file itself
                log.warning("command %s did not reach worker %d: %s", name, index, err)
