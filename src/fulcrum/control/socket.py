"""The local control socket: `fulcrum ctl` reaches the one command table here.

A Unix socket, mode 0600, so only its owner (root, or the service's user) may
change the node: the file system is the authentication. One JSON request per
connection, as pen's control port takes one command:

    {"command": "server.drain", "args": {"server": "10.0.0.11:8080"}}
    -> {"ok": true, "result": {...}}   or   {"ok": false, "error": "...", "problems": [...]}

`problems` lists (key path, reason) pairs when a configuration was invalid. The admin
plane's process reaches the node through a socket like this one (in a private 0700
directory) and adds `"by": "user from address"` so the node's log names who acted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import TYPE_CHECKING, Any

from fulcrum.config.errors import ConfigError
from fulcrum.control.commands import CommandError, execute, lookup
from fulcrum.proxy.listener import ListenError

if TYPE_CHECKING:
    from fulcrum.nodelike import NodeLike

log = logging.getLogger("fulcrum.control")

READ_TIMEOUT = 10.0
MAX_REQUEST = 64 * 1024


def default_socket_path() -> str | None:
    """Where the control socket is when control.socket is not set: systemd's
    $RUNTIME_DIRECTORY (/run/fulcrum with the shipped unit), /run/fulcrum as root,
    $XDG_RUNTIME_DIR/fulcrum otherwise (None when there is no such directory)."""
    runtime = os.environ.get("RUNTIME_DIRECTORY")  # systemd's RuntimeDirectory=fulcrum
    if runtime:
        return os.path.join(runtime.split(":")[0], "control.sock")
    if os.geteuid() == 0:
        return "/run/fulcrum/control.sock"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return os.path.join(runtime, "fulcrum", "control.sock") if runtime else None


def socket_path(configured: str | None) -> str | None:
    """control.socket as given ('off' = none), or the default location."""
    if configured == "off" or configured == "":
        return None
    return configured or default_socket_path()


async def serve_default_control_socket(node: NodeLike) -> asyncio.AbstractServer | None:
    """The control socket at its default place, unless another live node has it there (a
    second node on the machine then has none, and says so)."""
    path = default_socket_path()
    if path is None:
        log.info("no control socket: set control.socket (no $XDG_RUNTIME_DIR to put it in)")
        return None
    try:
        os.makedirs(os.path.dirname(path), mode=0o755 if os.geteuid() == 0 else 0o700, exist_ok=True)
        if os.path.exists(path) and await _in_use(path):
            log.warning("no control socket: %s is in use by another node (set control.socket)", path)
            return None
        return await serve_control_socket(node, path)
    except OSError as err:
        log.warning("no control socket at %s: %s (set control.socket)", path, err.strerror or err)
        return None
    except ListenError as err:
        log.warning("no control socket: %s (set control.socket)", err)
        return None


async def serve_control_socket(node: NodeLike, path: str) -> asyncio.AbstractServer:
    """Serve the socket at `path`; ListenError (one line, exit status 1) when it cannot be made."""
    old_umask = os.umask(0o177)  # created 0600: no window in which others could connect
    try:
        if os.path.exists(path) and not await _in_use(path):
            os.unlink(path)  # left by a process that died; a live one keeps its socket
        server = await asyncio.start_unix_server(lambda r, w: _handle(node, r, w), path, limit=MAX_REQUEST)
    except OSError as err:
        raise ListenError(f"cannot create control.socket {path}: {err.strerror or err}") from None
    finally:
        os.umask(old_umask)
    log.info("control socket on %s", path)
    return server


async def _in_use(path: str) -> bool:
    try:
        async with asyncio.timeout(1):
            _, writer = await asyncio.open_unix_connection(path)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


async def _handle(node: NodeLike, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                line = await reader.readline()
        except TimeoutError:
            reply: dict[str, Any] = {"ok": False, "error": f"no request within {READ_TIMEOUT:g}s"}
        except ValueError:  # the stream's limit: a line longer than MAX_REQUEST
            reply = {"ok": False, "error": f"request too large (more than {MAX_REQUEST // 1024} KiB on one line)"}
        else:
            reply = await _answer(node, line)
        writer.write(json.dumps(reply, default=str).encode() + b"\n")
        async with asyncio.timeout(READ_TIMEOUT):
            await writer.drain()
    except (OSError, TimeoutError):
        pass
    finally:
        writer.close()


async def _answer(node: NodeLike, line: bytes) -> dict[str, Any]:
    if len(line) > MAX_REQUEST:
        return {"ok": False, "error": "request too large"}
    try:
        request = json.loads(line)
        name, args = request["command"], request.get("args") or {}
        by = request.get("by")
        if not isinstance(name, str) or not isinstance(args, dict) or not isinstance(by, str | None):
            raise TypeError
    except RecursionError:
        return {"ok": False, "error": "request nested too deeply"}
    except (ValueError, KeyError, TypeError):
        return {"ok": False, "error": 'expected one JSON line: {"command": NAME, "args": {...}}'}
    try:
        result = await execute(node, name, args)
    except ConfigError as err:
        return {"ok": False, "error": str(err), "problems": err.problems}
    except CommandError as err:
        return {"ok": False, "error": str(err)}
    except OSError as err:  # config.write into a missing directory, say
        return {"ok": False, "error": f"{name}: {err.filename or ''}: {err.strerror or err}"}
    except RecursionError:
        return {"ok": False, "error": f"{name}: arguments nested too deeply"}
    except Exception as err:  # a bug: the caller still gets one line, the log the traceback
        log.exception("control: %s failed", name)
        return {"ok": False, "error": f"{name}: internal error ({type(err).__name__}); see the node's log"}
    if not lookup(name).reads_only:
        shown = {k: ("(a configuration)" if k == "config" else v) for k, v in args.items()}
        log.info("control: %s %s%s", name, json.dumps(shown, default=str), f" by {by}" if by else "")
    return {"ok": True, "result": result}
