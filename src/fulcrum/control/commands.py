"""The one command table: every runtime action, defined once.

`fulcrum ctl` (control socket, control/socket.py), pen's control port (penctl.py) and the
admin plane's REST API and web UI (admin/, a process of its own that reaches the node
through a private control socket) all call `execute(node, name, args)`; the API's OpenAPI
document is generated from this table. Each command has a name, typed arguments and a
help line; `reads_only` marks the ones that change nothing (not logged as changes).

Two kinds of command:
 - *config* commands change configured settings. They edit a copy of the
   configuration (as a plain dict, the model's own dump) and hand the validated result
   to `node.reload`, so config sync and `write` see every change. The same edit
   functions run offline on a dict under construction (`edit_dict`): that is how
   pen's -F files and -o options are applied before any node exists.
 - *runtime* commands act on the live node (status, blacklist a server now, write
   the status file, reload, and whole configurations: config.show, config.apply,
   config.versions, config.rollback — control/versions.py).

The node interface: `config`, `pools` (name -> PoolRuntime), `now()`, `connections`,
`reload(config)` (sync or async; raises ConfigError when invalid)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fulcrum.config.errors import ConfigError
from fulcrum.config.load import load_dict
from fulcrum.config.model import Config
from fulcrum.config.schedulers import known_schedulers
from fulcrum.config.types import join_host_port, parse_duration, split_host_port
from fulcrum.control.errors import CommandError
from fulcrum.nodelike import edit_lock

if TYPE_CHECKING:
    from fulcrum.kernel.plane import NftPlane
    from fulcrum.nodelike import NodeLike


# -- argument parsers: accept text (penctl, CLI) and typed values (REST JSON) --------

def count(value: Any) -> int:
    """A whole number >= 0."""
    if isinstance(value, bool):
        raise ValueError("must be a whole number")
    number = int(value)
    if number < 0:
        raise ValueError("must not be negative")
    return number


def seconds(value: Any) -> float:
    return parse_duration(value)


def flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "on", "yes", "true"):
        return True
    if text in ("0", "off", "no", "false"):
        return False
    raise ValueError("must be on or off")


def text(value: Any) -> str:
    return str(value)


def scheduler_name(value: Any) -> str:
    name = str(value)
    if name not in known_schedulers():
        raise ValueError(f"unknown scheduler {name!r}; known: {', '.join(sorted(known_schedulers()))}")
    return name


@dataclass(frozen=True)
class Arg:
    name: str
    parse: Callable[[Any], Any]
    help: str
    required: bool = True


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    args: tuple[Arg, ...]
    func: Callable[..., Any]
    edits_config: bool
    reads_only: bool = False  # shows state, changes nothing (not logged as a change)

    def bind(self, given: Mapping[str, Any]) -> dict[str, Any]:
        known = {arg.name for arg in self.args}
        unknown = sorted(set(given) - known)
        if unknown:
            raise CommandError(f"{self.name}: unknown argument {unknown[0]!r}")
        bound: dict[str, Any] = {}
        for arg in self.args:
            value = given.get(arg.name)
            if value is None:
                if arg.required:
                    raise CommandError(f"{self.name}: argument {arg.name!r} is required")
                bound[arg.name] = None
                continue
            try:
                bound[arg.name] = arg.parse(value)
            except (TypeError, ValueError) as err:
                raise CommandError(f"{self.name}: {arg.name} {value!r}: {err}") from err
        return bound


COMMANDS: dict[str, Command] = {}


def _register(name: str, help: str, args: tuple[Arg, ...], edits_config: bool,
              reads_only: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        if name in COMMANDS:
            raise ValueError(f"command {name!r} is defined twice")
        COMMANDS[name] = Command(name, help, args, func, edits_config, reads_only)
        return func
    return decorate


def config_command(name: str, help: str, *args: Arg) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """func(draft: Draft, **args) edits the configuration draft."""
    return _register(name, help, args, edits_config=True)


def runtime_command(name: str, help: str, *args: Arg,
                    reads_only: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """func(node, **args) acts on the live node; may be a coroutine function."""
    return _register(name, help, args, edits_config=False, reads_only=reads_only)


def lookup(name: str) -> Command:
    try:
        return COMMANDS[name]
    except KeyError:
        raise CommandError(f"unknown command {name!r}") from None


def describe() -> list[dict[str, Any]]:
    """The table as data, for `fulcrum ctl help`, the API's index and the web UI."""
    return [{"name": c.name, "help": c.help, "changes_config": c.edits_config, "reads_only": c.reads_only,
             "args": [{"name": a.name, "help": a.help, "required": a.required} for a in c.args]}
            for c in sorted(COMMANDS.values(), key=lambda c: c.name)]


# -- running commands -------------------------------------------------------------

async def execute(node: NodeLike, name: str, args: Mapping[str, Any] | None = None, carry: bool = True) -> Any:
    """Run one command against a live node. Config commands end in `node.reload`. With
    workers > 1 a change made here is then carried to every other worker (`carry`:
    fulcrum/shared/commands.py), so a command acts on the whole node."""
    from fulcrum.shared.commands import carry as carry_to_workers

    command = lookup(name)
    bound = command.bind(args or {})
    if command.edits_config:
        # One edit at a time per node: two concurrent edits of the same snapshot
        # would otherwise lose one of the changes.
        async with edit_lock(node):
            data = node.config.model_dump()
            result = command.func(Draft(data), **bound)
            new_config = load_dict(data)
            await _settle(node.reload(new_config))
            if carry:
                carry_to_workers(node, name, {}, config=new_config)
        return result
    result = await _settle(command.func(node, **bound))
    if carry:
        given = dict(args or {})
        if name == "reload" and given.get("config") is not None:
            carry_to_workers(node, name, {}, config=node.config)
        else:
            carry_to_workers(node, name, given)
    return result


def edit_dict(data: dict[str, Any], name: str, args: Mapping[str, Any] | None = None) -> Any:
    """Apply a config command to a configuration dict (no node, no validation yet)."""
    command = lookup(name)
    if not command.edits_config:
        raise CommandError(f"{name} acts on a running balancer; it has no meaning in a configuration")
    return command.func(Draft(data), **command.bind(args or {}))


def edited(config: Config, name: str, args: Mapping[str, Any] | None = None) -> Config:
    """The configuration `config` would become after a config command (validated)."""
    data = config.model_dump()
    edit_dict(data, name, args)
    return load_dict(data)


async def _settle(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


# -- finding pools and servers in a configuration dict -----------------------------

class Draft:
    """A configuration being edited, as the model's plain-dict dump."""

    def __init__(self, data: dict[str, Any]):
        self.data = data

    def pool_name(self, pool: str | None) -> str:
        pools = self.data.get("pools") or {}
        if pool is not None:
            if pool not in pools:
                raise CommandError(f"no pool named {pool!r}")
            return pool
        if len(pools) != 1:
            raise CommandError(f"name the pool: this configuration has {len(pools)} pools")
        return str(next(iter(pools)))

    def pool(self, pool: str | None) -> dict[str, Any]:
        found: dict[str, Any] = self.data["pools"][self.pool_name(pool)]
        return found

    def service_name(self, service: str | None) -> str:
        services = self.data.get("services") or {}
        if service is not None:
            if service not in services:
                raise CommandError(f"no service named {service!r}")
            return service
        if len(services) != 1:
            raise CommandError(f"name the service: this configuration has {len(services)} services")
        return str(next(iter(services)))

    def find_server(self, ref: str, pool: str | None = None) -> tuple[str, int]:
        """(pool name, index) of a server given as `N`, `host:port`, `pool/N` or `pool/host:port`."""
        ref = str(ref).strip()
        if "/" in ref:
            pool, ref = ref.split("/", 1)
        if ref.isdigit():
            name = self.pool_name(pool)
            index = int(ref)
            servers = self.data["pools"][name]["servers"]
            if index >= len(servers):
                raise CommandError(f"server {index}: pool {name!r} has {len(servers)} server(s), numbered from 0")
            return name, index
        try:
            host, port = split_host_port(ref)
        except ValueError as err:
            raise CommandError(f"server {ref!r}: expected an index N or host:port ({err})") from None
        names = [self.pool_name(pool)] if pool is not None else list(self.data["pools"])
        matches = [(name, i) for name in names
                   for i, server in enumerate(self.data["pools"][name]["servers"])
                   if server["address"] == host and server["port"] == port]
        if not matches:
            raise CommandError(f"no server {join_host_port(host, port)}")
        if len(matches) > 1:
            raise CommandError(f"server {join_host_port(host, port)} is in several pools; write pool/{ref}")
        return matches[0]

    def server(self, ref: str, pool: str | None = None) -> dict[str, Any]:
        name, index = self.find_server(ref, pool)
        found: dict[str, Any] = self.data["pools"][name]["servers"][index]
        return found

    def listen_port(self, pool: str) -> int | None:
        """pen's default server port: the listen port of a service using this pool."""
        for service in self.data.get("services", {}).values():
            if service.get("pool") == pool and service.get("listen"):
                return split_host_port(str(service["listen"][0]), default_host="0.0.0.0")[1]
        return None


SERVER = Arg("server", text, "server index N, host:port, or pool/N")
POOL = Arg("pool", text, "pool name (needed when there are several)", required=False)
SERVICE = Arg("service", text, "service name (needed when there are several)", required=False)


# -- servers --------------------------------------------------------------------------

def _set_server(draft: Draft, server: str, pool: str | None, **fields: Any) -> dict[str, Any]:
    entry = draft.server(server, pool)
    entry.update({k: v for k, v in fields.items() if v is not None})
    return entry


@config_command("server.enable", "Take new connections on a server again.", SERVER, POOL)
def server_enable(draft: Draft, server: str, pool: str | None) -> dict[str, Any]:
    return _set_server(draft, server, pool, state="enabled")


@config_command("server.disable", "Stop using a server (sticky clients move too).", SERVER, POOL)
def server_disable(draft: Draft, server: str, pool: str | None) -> dict[str, Any]:
    return _set_server(draft, server, pool, state="disabled")


@config_command("server.drain", "No new clients; clients already stuck to the server continue.", SERVER, POOL)
def server_drain(draft: Draft, server: str, pool: str | None) -> dict[str, Any]:
    return _set_server(draft, server, pool, state="drain")


@config_command("server.weight", "Set a server's weight (0 = quiesced).",
                SERVER, Arg("weight", count, "0..65535"), POOL)
def server_weight(draft: Draft, server: str, weight: int, pool: str | None) -> dict[str, Any]:
    return _set_server(draft, server, pool, weight=weight)


@config_command("server.max", "Set a server's soft limit (pen max; 0 = none).",
                SERVER, Arg("limit", count, "connections"), POOL)
def server_max(draft: Draft, server: str, limit: int, pool: str | None) -> dict[str, Any]:
    return _set_server(draft, server, pool, max_connections=limit)


@config_command("server.hard", "Set a server's hard limit, which binds sticky clients too (0 = none).",
                SERVER, Arg("limit", count, "connections"), POOL)
def server_hard(draft: Draft, server: str, limit: int, pool: str | None) -> dict[str, Any]:
    return _set_server(draft, server, pool, hard_limit=limit)


@config_command("server.prio", "Set a server's priority for the prio scheduler (lower is preferred).",
                SERVER, Arg("prio", count, "priority"), POOL)
def server_prio(draft: Draft, server: str, prio: int, pool: str | None) -> dict[str, Any]:
    return _set_server(draft, server, pool, priority=prio)


@config_command("server.move", "Change a server's address and/or port.",
                SERVER, Arg("address", text, "new address", required=False),
                Arg("port", count, "new port", required=False), POOL)
def server_move(draft: Draft, server: str, address: str | None, port: int | None,
                pool: str | None) -> dict[str, Any]:
    return _set_server(draft, server, pool, address=address, port=port)


@config_command("server.add", "Add a server to a pool (port defaults to the listen port, as in pen).",
                Arg("address", text, "address"), Arg("port", count, "port", required=False),
                Arg("weight", count, "weight", required=False),
                Arg("max", count, "soft limit", required=False),
                Arg("hard", count, "hard limit", required=False),
                Arg("prio", count, "priority", required=False), POOL)
def server_add(draft: Draft, address: str, port: int | None, weight: int | None, max: int | None,
               hard: int | None, prio: int | None, pool: str | None) -> dict[str, Any]:
    name = draft.pool_name(pool)
    port = port if port is not None else draft.listen_port(name)
    if port is None:
        raise CommandError(f"server.add: give a port (no service listens for pool {name!r})")
    entry: dict[str, Any] = {"address": address, "port": port}
    for key, value in (("weight", weight), ("max_connections", max), ("hard_limit", hard), ("priority", prio)):
        if value is not None:
            entry[key] = value
    draft.data["pools"][name]["servers"].append(entry)
    return entry


@config_command("server.remove", "Remove a server from its pool.", SERVER, POOL)
def server_remove(draft: Draft, server: str, pool: str | None) -> dict[str, Any]:
    name, index = draft.find_server(server, pool)
    removed: dict[str, Any] = draft.data["pools"][name]["servers"].pop(index)
    return removed


@runtime_command("server.blacklist", "Skip a server for N seconds from now (pen's blacklist; runtime only).",
                 SERVER, Arg("seconds", seconds, "how long"), POOL)
def server_blacklist(node: NodeLike, server: str, seconds: float, pool: str | None) -> dict[str, Any]:
    name, index = Draft(node.config.model_dump()).find_server(server, pool)
    runtime = node.pools[name]
    key = node.config.pools[name].servers[index].key
    backend = runtime.find(key)
    if backend is None:
        raise CommandError(f"server {key} is not running in pool {name!r}")
    backend.blacklisted_until = node.now() + seconds
    return {"pool": name, "server": key, "seconds": seconds}


# -- pools --------------------------------------------------------------------------

@config_command("pool.scheduler", "Choose a pool's scheduler (pen: hash, roundrobin, weight, prio).",
                Arg("scheduler", scheduler_name, "scheduler name"), POOL)
def pool_scheduler(draft: Draft, scheduler: str, pool: str | None) -> str:
    draft.pool(pool)["scheduler"] = scheduler
    return scheduler


@config_command("pool.sticky", "Client tracking: 'source' (pen's client table) or 'none' (pen -r).",
                Arg("mode", text, "none | source | cookie | insert"), POOL)
def pool_sticky(draft: Draft, mode: str, pool: str | None) -> str:
    draft.pool(pool).setdefault("sticky", {})["mode"] = mode
    return mode


@config_command("pool.stubborn", "Stubborn selection (pen -s): never fail over to another server.",
                Arg("on", flag, "on | off"), POOL)
def pool_stubborn(draft: Draft, on: bool, pool: str | None) -> bool:
    draft.pool(pool)["stubborn"] = on
    return on


@config_command("pool.clients_max", "Size of the client table (pen -c, clients_max).",
                Arg("size", count, "clients remembered"), POOL)
def pool_clients_max(draft: Draft, size: int, pool: str | None) -> int:
    draft.pool(pool).setdefault("sticky", {})["table_size"] = size
    return size


@config_command("pool.tracking", "Forget a client after this long (pen -T, tracking; 0 = never).",
                Arg("seconds", seconds, "duration"), POOL)
def pool_tracking(draft: Draft, seconds: float, pool: str | None) -> float:
    draft.pool(pool).setdefault("sticky", {})["expiry"] = seconds
    return seconds


@config_command("pool.blacklist", "How long a server that failed a connect is skipped (pen -b).",
                Arg("seconds", seconds, "duration"), POOL)
def pool_blacklist(draft: Draft, seconds: float, pool: str | None) -> float:
    draft.pool(pool)["blacklist"] = seconds
    return seconds


@config_command("pool.emergency", "Set (or with no address, remove) the emergency server (pen -e).",
                Arg("address", text, "host", required=False), Arg("port", count, "port", required=False), POOL)
def pool_emergency(draft: Draft, address: str | None, port: int | None, pool: str | None) -> Any:
    name = draft.pool_name(pool)
    if address is None:
        draft.data["pools"][name]["emergency"] = None
        return None
    port = port if port is not None else draft.listen_port(name)
    if port is None:
        raise CommandError("pool.emergency: give a port")
    draft.data["pools"][name]["emergency"] = {"address": address, "port": port}
    return draft.data["pools"][name]["emergency"]


# -- node-wide limits and timeouts --------------------------------------------------

@config_command("conn_max", "Global connection limit (pen -x, conn_max; 0 = none).",
                Arg("limit", count, "connections"))
def conn_max(draft: Draft, limit: int) -> int:
    draft.data["max_connections"] = limit
    return limit


@config_command("timeout.connect", "Connect timeout to a server (pen -t, timeout).",
                Arg("seconds", seconds, "duration"))
def timeout_connect(draft: Draft, seconds: float) -> float:
    draft.data.setdefault("timeouts", {})["connect"] = seconds
    return seconds


@config_command("timeout.idle", "Close relays idle this long (pen idle_timeout; 0 = never).",
                Arg("seconds", seconds, "duration"))
def timeout_idle(draft: Draft, seconds: float) -> float:
    draft.data.setdefault("timeouts", {})["idle"] = seconds
    return seconds


# -- services and control -------------------------------------------------------------

@config_command("service.forwarded_for", "Add X-Forwarded-For/-Proto to HTTP passing through (pen -H, http).",
                Arg("on", flag, "on | off"), SERVICE)
def service_forwarded_for(draft: Draft, on: bool, service: str | None) -> bool:
    draft.data["services"][draft.service_name(service)]["forwarded_for"] = on
    return on


@config_command("service.listen", "Replace a service's listen addresses (comma-separated).",
                Arg("listen", text, "[host:]port[,...]"), SERVICE)
def service_listen(draft: Draft, listen: str, service: str | None) -> list[str]:
    addresses = [part.strip() for part in listen.split(",") if part.strip()]
    draft.data["services"][draft.service_name(service)]["listen"] = addresses
    return addresses


@config_command("control.status_file", "Where the HTML status page is written (pen -w, web_stats); empty = none.",
                Arg("path", text, "file", required=False))
def control_status_file(draft: Draft, path: str | None) -> str | None:
    draft.data.setdefault("control", {})["status_file"] = path or None
    return path or None


# -- runtime: status, files, reload ---------------------------------------------------

@runtime_command("status", "Services, pools and servers with their live state.", reads_only=True)
def show_status(node: NodeLike) -> dict[str, Any]:
    from fulcrum.control.status import status

    return status(node)


@runtime_command("servers", "Every server with its index, limits, weight and counters.", POOL, reads_only=True)
def list_servers(node: NodeLike, pool: str | None) -> list[dict[str, Any]]:
    from fulcrum.control.status import status

    pools = status(node)["pools"]
    if pool is not None and pool not in pools:
        raise CommandError(f"no pool named {pool!r}")
    return [dict(server, pool=name) for name, info in pools.items()
            if pool is None or name == pool for server in info["servers"]]


@runtime_command("status.write", "Write the HTML status page now (pen's SIGUSR1 with -w).",
                 Arg("path", text, "file (default: control.status_file)", required=False))
def status_write(node: NodeLike, path: str | None) -> str:
    from fulcrum.control.status import write_status_file

    target = path or node.config.control.status_file
    if not target:
        raise CommandError("status.write: no file given and control.status_file is not set")
    write_status_file(node, target)
    return str(target)


@runtime_command("config.write", "Write the running configuration to a file, as TOML or as a pen -F file.",
                 Arg("path", text, "file"), Arg("format", text, "toml | pen", required=False))
def config_write(node: NodeLike, path: str, format: str | None) -> str:
    from fulcrum.files import atomic_write

    if format in (None, "toml"):
        import tomli_w

        body = tomli_w.dumps(node.config.model_dump(mode="json", exclude_none=True))
    elif format == "pen":
        from fulcrum.control.pen_commands import render_pen_config

        body = render_pen_config(node.config, path)
    else:
        raise CommandError(f"config.write: unknown format {format!r}; use toml or pen")
    atomic_write(path, body, 0o644)
    return path


@runtime_command("kernel.list", "Kernel services (nat, fullnat, dsr): servers, weights, nftables counters "
                 "and the conntrack table (what `fulcrum ipvsadm -L` prints).")
async def kernel_list(node: NodeLike) -> dict[str, Any]:
    from fulcrum.kernel.ipvsadm_view import read_conntrack

    plane: NftPlane | None = getattr(getattr(node, "kernel", None), "plane", None)  # node.kernel: kernel/part.py
    stats = await asyncio.to_thread(plane.stats) if plane is not None else []
    conntrack, error = await read_conntrack() if stats else ("", None)
    return {"size": node.config.kernel.flow_table_size, "services": stats, "conntrack": conntrack,
            "conntrack_error": error}


@runtime_command("reload", "Apply a new configuration hitlessly: the given one, or re-read the node's source.",
                 Arg("config", lambda value: value, "a full configuration (dict)", required=False))
async def reload(node: NodeLike, config: Any) -> Any:
    """Re-reading the source keeps runtime changes the file did not touch and returns what
    happened (reload.py); a failed reload raises with nothing changed."""
    if config is None:
        reread = getattr(node, "reload_from_source", None)
        if reread is None or getattr(node, "loader", True) is None:
            raise CommandError("reload: give a configuration; this node has no file to re-read")
        return await _settle(reread())
    if not isinstance(config, Config | dict):  # `fulcrum ctl reload PATH`, say
        raise CommandError("reload: takes a whole configuration (a JSON object), not a file name; to re-read "
                           "the node's own file give no argument (`fulcrum ctl reload`)")
    new_config = config if isinstance(config, Config) else load_dict(dict(config))
    await _settle(node.reload(new_config))
    return "reloaded"


# -- whole configurations: apply, versions, rollback (control/versions.py) -----------------

def _whole_config(value: Any) -> Any:
    if isinstance(value, Config):
        return value
    if not isinstance(value, dict):
        raise ValueError("must be a whole configuration (a JSON object)")
    return load_dict(value)  # ConfigError: every problem with its key path


@runtime_command("config.show", "The running configuration (JSON, defaults filled in).", reads_only=True)
def config_show(node: NodeLike) -> dict[str, Any]:
    shown: dict[str, Any] = node.config.model_dump(mode="json")
    return shown


@runtime_command("config.apply", "Run a whole new configuration: validated, applied hitlessly, written "
                 "to the configuration file, synced to the peers and kept as a version.",
                 Arg("config", _whole_config, "a full configuration (JSON object)"),
                 Arg("why", text, "what the change is, for the file's header", required=False))
async def config_apply(node: NodeLike, config: Config, why: str | None) -> dict[str, Any]:
    from fulcrum.control.versions import apply_config, current_version

    async with edit_lock(node):
        result = await apply_config(node, config, why or "applied through the command table")
    return {"result": result, "version": current_version(node)}


@runtime_command("config.versions", "The kept versions of the configuration, oldest first.", reads_only=True)
def config_versions(node: NodeLike) -> list[dict[str, Any]]:
    from fulcrum.control.versions import list_versions

    return list_versions(node)


@runtime_command("config.version", "One kept version as this node would run it (JSON).",
                 Arg("version", count, "version number"), reads_only=True)
def config_version(node: NodeLike, version: int) -> dict[str, Any]:
    from fulcrum.control.versions import version_config

    shown: dict[str, Any] = version_config(node, version).model_dump(mode="json")
    return shown


@runtime_command("config.rollback", "Go back to a kept version: applied as a new change (synced, versioned).",
                 Arg("version", count, "version number"))
async def config_rollback(node: NodeLike, version: int) -> dict[str, Any]:
    from fulcrum.control.versions import apply_config, current_version, version_config

    async with edit_lock(node):
        config = version_config(node, version)
        result = await apply_config(node, config, f"rollback to version {version}")
    return {"result": result, "version": current_version(node), "rolled_back_to": version}


__all__ = ["COMMANDS", "Arg", "Command", "CommandError", "ConfigError", "Draft", "describe",
           "edit_dict", "edited", "execute", "lookup"]
