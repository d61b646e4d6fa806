"""pen's control port (pen -C), speaking pen's line protocol to penctl and scripts.

As in pen 0.34: a client connects, sends one command line (penctl appends '\\n'; the
end of the client's stream ends a line too), and reads the reply until the server
closes. A client that sends nothing for READ_TIMEOUT seconds, or a line longer than
LINE_LIMIT, is dropped without a reply. Replies use pen's formats (`servers`,
`mode`, the bare numbers of `timeout`, `clients_max`...; `status` is pen's HTML page).
Commands are translated by fulcrum.control.pen_commands and run through the one command
table, so a change made here is a configuration change the node reloads.

Bound to localhost unless an address is given (control.pen_port carries it). The
protocol has no authentication, as pen's; keep it on loopback or behind a firewall.
So, as pen does, `fulcrum run`/`fulcrum pen` refuse to open it as root unless they run
as another `user` (pen -u; cli/process.py), and the files it can write (`write`,
`web_stats`) are confined to control.pen_dir (control/confine.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fulcrum.config.errors import ConfigError
from fulcrum.control.commands import CommandError, execute
from fulcrum.control.confine import confined_path
from fulcrum.control.pen_commands import (
    PEN_PRECEDENCE,
    PenAction,
    PenRefused,
    pen_mode_flags,
    translate_pen_command,
)
from fulcrum.control.status import render_pen_html

if TYPE_CHECKING:
    from fulcrum.importers.pen import PenInvocation
    from fulcrum.nodelike import NodeLike

log = logging.getLogger("fulcrum.penctl")

LINE_LIMIT = 4096  # pen reads one recv() of up to 4095 bytes
READ_TIMEOUT = 10.0
WRITE_TIMEOUT = 10.0


@dataclass
class PenProcess:
    """What pen's control port knows beyond the configuration (from the command line)."""

    exit_enabled: bool = False
    config_file: str | None = None
    debug: int = 0
    logfile: str | None = None
    on_exit: Callable[[], None] | None = None

    @classmethod
    def from_invocation(cls, invocation: PenInvocation | None) -> PenProcess:
        if invocation is None:
            return cls()
        return cls(exit_enabled=invocation.exit_enabled, config_file=invocation.config_file,
                   debug=invocation.debug, logfile=invocation.logfile)

    def writable_dir(self, configured: str | None) -> str | None:
        """Where the port may write: control.pen_dir, else (fulcrum pen -F) beside the -F
        file, which is `write`'s default target."""
        if configured:
            return configured
        return os.path.dirname(os.path.abspath(self.config_file)) if self.config_file else None

    def exit(self) -> None:
        """pen's `exit` quits cleanly, as on SIGTERM; fulcrum's runner handles SIGTERM."""
        if self.on_exit is not None:
            self.on_exit()
        else:
            os.kill(os.getpid(), signal.SIGTERM)


async def serve_penctl(node: NodeLike, host: str, port: int, *, invocation: PenInvocation | None = None,
                       process: PenProcess | None = None, sock: socket.socket | None = None) -> asyncio.Server:
    """Start pen's control port (on `sock` when the node bound it already). `invocation`
    (from `fulcrum pen`) enables `exit` (-X) and gives `write` its default file (-F); the
    node may also carry it as `node.pen_invocation`."""
    if process is None:
        process = PenProcess.from_invocation(invocation or getattr(node, "pen_invocation", None))

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), READ_TIMEOUT)
            reply = await respond(node, line.decode("utf-8", "replace"), process)
            writer.write(reply.encode())
            await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)
        except (TimeoutError, ConnectionError, ValueError) as err:  # ValueError: line too long
            log.debug("control connection dropped: %r", err)
        except Exception:  # a bug: say so in the log, keep serving other clients
            log.exception("control command failed")
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), WRITE_TIMEOUT)

    if sock is not None:
        return await asyncio.start_server(handle, sock=sock, limit=LINE_LIMIT)
    return await asyncio.start_server(handle, host, port, limit=LINE_LIMIT)


async def respond(node: NodeLike, line: str, process: PenProcess | None = None) -> str:
    """Run one control line and return pen's reply text."""
    process = process or PenProcess()
    words = line.split()
    try:
        action = translate_pen_command(words, node.config.model_dump())
        for name, args in action.calls:
            if name == "control.status_file" and args.get("path") \
                    and args["path"] != node.config.control.status_file:
                args = {**args, "path": confined_path(process.writable_dir(node.config.control.pen_dir),
                                                     args["path"], "web_stats")}
            await execute(node, name, args)
        return await _finish(node, action, process)
    except PenRefused as err:
        return f"{err}\n"
    except (CommandError, ConfigError) as err:
        return f"error: {err}\n"
    except OSError as err:  # write, status files
        return f"error: {err.filename or ''}: {err.strerror or err}\n"


async def _finish(node: NodeLike, action: PenAction, process: PenProcess) -> str:
    out = [action.notice + "\n"] if action.notice else []
    if action.process is not None:
        out.append(await _process_verb(node, *action.process, process=process))
    if action.query is not None:
        out.append(query(node, action.query, process))
    return "".join(out)


async def _process_verb(node: NodeLike, verb: str, arg: str | None, process: PenProcess) -> str:
    if verb == "exit":
        if not process.exit_enabled:
            return "Exit is not enabled; restart with -X flag\n"
        process.exit()
        return ""
    if verb == "write":
        target = arg or process.config_file
        if not target:
            return "write: no file (give one, or start with -F)\n"
        target = confined_path(process.writable_dir(node.config.control.pen_dir), target, "write")
        await execute(node, "config.write", {"path": target, "format": "pen"})
        return ""
    if verb in ("debug", "log") and arg is not None:
        return f"{verb}: set the log level and file when starting fulcrum; not changeable here\n"
    if verb == "include":
        return "include: files are read at startup (-F); not changeable here\n"
    return ""


def _num(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


def _only(mapping: dict[str, Any], what: str) -> Any:
    if len(mapping) != 1:
        raise CommandError(f"pen's commands address one {what}; this configuration has {len(mapping)}")
    return next(iter(mapping.values()))


def query(node: NodeLike, word: str, process: PenProcess) -> str:
    """pen's reply to a command that prints a value."""
    config = node.config
    if word == "servers":
        return "".join(_server_line(s) for s in _servers(node))
    if word == "status":
        return render_pen_html(node)
    if word == "mode":
        pool = _only(config.pools, "pool")
        flags = pen_mode_flags(pool.model_dump())
        text = " ".join(("" if flags[f] else "no ") + f for f in ("hash", "roundrobin", "stubborn", "weight", "prio"))
        if pool.scheduler not in PEN_PRECEDENCE:
            text += f" scheduler {pool.scheduler}"
        return text + "\n"
    if word == "pid":
        return f"{os.getpid()}\n"
    if word == "debug":
        return f"{process.debug}\n"
    if word == "log":
        return f"{process.logfile}\n" if process.logfile else ""
    if word in ("client_acl", "control_acl"):
        return "0\n"
    if word == "control":
        return f"{config.control.pen_port}\n" if config.control.pen_port else ""
    if word == "listen":
        return ",".join(str(e) for e in _only(config.services, "service").listen) + "\n"
    if word == "web_stats":
        return f"{config.control.status_file}\n" if config.control.status_file else ""
    if word == "conn_max":
        return f"{config.max_connections}\n"
    if word == "timeout":
        return f"{_num(config.timeouts.connect)}\n"
    if word == "idle_timeout":
        return f"Idle timeout: {_num(config.timeouts.idle)} seconds\n"
    if word == "recent":
        return _recent(node)
    pool = _only(config.pools, "pool")
    value = {"blacklist": pool.blacklist, "clients_max": pool.sticky.table_size,
             "tracking": pool.sticky.expiry}[word]
    return f"{_num(value)}\n"


def _servers(node: NodeLike) -> list[tuple[str, Any]]:
    several = len(node.pools) > 1
    return [(f"{name}/{i}" if several else str(i), backend)
            for name, pool in node.pools.items() for i, backend in enumerate(pool.backends)]


def _server_line(entry: tuple[str, Any]) -> str:
    # pen: "%d addr %s port %d conn %d max %d hard %d weight %d prio %d sx %llu rx %llu".
    # fulcrum counts relayed bytes in both directions together: sx carries them, rx is 0.
    index, b = entry
    return (f"{index} addr {b.address} port {b.port} conn {b.active} max {b.max_connections} "
            f"hard {b.hard_limit} weight {b.weight} prio {b.priority} sx {b.traffic} rx 0\n")


def _recent(node: NodeLike) -> str:
    """pen's `recent`: clients seen lately, with the server they were sent to."""
    now = node.now()
    lines = []
    for pool in node.pools.values():
        if pool.clients is None:
            continue
        for client, server, seen in pool.clients.items():
            if now - seen <= 300:
                lines.append(f"{client} server {server} age {int(now - seen)}\n")
    return "".join(lines)
