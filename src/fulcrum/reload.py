"""Safe reloads: build and check the whole new state before anything is swapped, and keep
the operator's runtime changes.

1. `preflight(config)` reads everything a configuration needs from the file system —
   TLS certificates and keys, CA files, the daemon log file, the access logs, the
   directories files are written to — and opens what it will write to. Any problem: every
   problem is listed in one `ReloadError`, whatever was opened is closed, nothing changed.
   Listen addresses are bound next by the node, all or none (node._bind_missing).
2. Only then does the node swap pools, services and listeners (node.reload), and the
   prepared log handler and access logs replace the old ones (`Prepared.commit`).

Runtime changes (`fulcrum ctl server.drain`, `server.weight`, ...) edit the running
configuration only. When the source (the file, or pen's command line) is read again, they
are merged in the way of HAProxy's server-state file: a setting changed at runtime keeps
its runtime value unless the file changed that same setting since it was last read; a
reload that overrides a runtime change says so in the log (`merge_runtime`)."""

from __future__ import annotations

import logging
import os
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fulcrum import logs
from fulcrum.accesslog import AccessLogs, open_access_logs
from fulcrum.config.errors import ConfigError
from fulcrum.config.load import load_dict
from fulcrum.config.model import Config
from fulcrum.config.types import join_host_port
from fulcrum.logs import build_handler, install_handler

if TYPE_CHECKING:
    from fulcrum.nodelike import NodeLike

log = logging.getLogger("fulcrum.reload")


class ReloadError(ConfigError):
    """The new state cannot be built; nothing was changed. Problems as (key path, reason)."""

    exit_status = 1


# -- 1. build and check -----------------------------------------------------------------

@dataclass
class Prepared:
    """What a configuration opened before the swap; `commit` installs it, `discard` closes it."""

    config: Config
    access_logs: AccessLogs
    log_handler: logging.Handler | None  # None: keep the current one (same settings)
    debug: bool = False

    def commit(self, node: NodeLike) -> None:
        sinks = node.observer.sinks
        old = [sink for sink in sinks if isinstance(sink, AccessLogs)]
        sinks[:] = [sink for sink in sinks if not isinstance(sink, AccessLogs)]
        if self.access_logs:
            sinks.append(self.access_logs)
        for sink in old:
            sink.close()
        if self.log_handler is not None:
            install_handler(self.config.log, self.log_handler, self.debug)
        else:
            logging.getLogger("fulcrum").setLevel("DEBUG" if self.debug else self.config.log.level.upper())

    def discard(self) -> None:
        self.access_logs.close()
        if self.log_handler is not None:
            self.log_handler.close()


def preflight(config: Config, current: Config | None = None, daemon_log: bool = True) -> Prepared:
    """Read and open everything `config` needs; raise ReloadError listing every problem.
    `current`: the running configuration (its daemon log stays open when unchanged).
    `daemon_log=False` leaves the daemon log alone (a process that set it up itself)."""
    problems = check_files(config)
    handler: logging.Handler | None = None
    access = AccessLogs({}, [])
    if not problems and daemon_log and (current is None or current.log != config.log):
        try:
            handler = build_handler(config.log, syslog=logs.detached)
        except OSError as err:
            problems.append(("log.file", f"cannot open {config.log.file}: {err.strerror or err}"))
    if not problems:
        try:
            access = open_access_logs(config)
        except OSError as err:
            problems.append(("log.access", f"cannot open {err.filename}: {err.strerror or err}"))
    if problems:
        if handler is not None:
            handler.close()
        raise ReloadError(problems)
    return Prepared(config, access, handler, logs.debug)


def check_files(config: Config) -> list[tuple[str, str]]:
    """Problems with the files and directories `config` names (nothing is opened for
    writing). `fulcrum check` runs this too, so ExecReload refuses what a reload would."""
    from fulcrum.proxy.http.tls import TlsError, _context, certificate_names

    problems: list[tuple[str, str]] = []
    for name, service in config.services.items():
        tls = service.http.tls if service.mode == "http" else None
        for i, cert in enumerate(tls.certificates if tls else []):
            where = f"services.{name}.http.tls.certificates[{i}]"
            try:
                _context(cert, tls.ciphers if tls else None)
                certificate_names(cert)
            except TlsError as err:
                problems.append((where, str(err)))
            except (OSError, ssl.SSLError, ValueError) as err:
                problems.append((where, f"cannot read {cert.cert}: {err}"))
    for name, pool in config.pools.items():
        if pool.tls and pool.tls_ca:
            try:
                ssl.create_default_context(cafile=pool.tls_ca)
            except (OSError, ssl.SSLError) as err:
                problems.append((f"pools.{name}.tls_ca", f"cannot load {pool.tls_ca}: {err}"))
    for where, path in (("control.status_file", config.control.status_file),
                        ("control.pidfile", config.control.pidfile)):
        if path:
            directory = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(directory):
                problems.append((where, f"directory {directory} does not exist"))
            elif not os.access(directory, os.W_OK):
                problems.append((where, f"directory {directory} is not writable"))
    return problems


# -- 2. runtime changes across a reload from the source ---------------------------------

@dataclass
class Merge:
    config: Config
    kept: list[str] = field(default_factory=list)  # runtime changes the file did not touch
    overridden: list[str] = field(default_factory=list)  # runtime changes the file changed too


_MISSING = object()


def merge_runtime(base: Config, running: Config, new: Config) -> Merge:
    """Three-way merge: `base` is the source as last read, `running` is it plus the runtime
    changes, `new` is the source read now. Servers are matched by address:port."""
    kept: list[str] = []
    overridden: list[str] = []
    data = _merge(base.model_dump(), running.model_dump(), new.model_dump(), "", kept, overridden)
    if not kept:
        return Merge(new, kept, overridden)
    try:
        merged = load_dict(data)
    except ConfigError as err:
        # the runtime changes no longer fit the new file (a pool they named is gone, ...):
        # the file wins, and the log says which changes were dropped
        log.warning("reload: runtime changes dropped, they do not fit the new configuration (%s)",
                    str(err).replace("\n", "; "))
        return Merge(new, [], overridden + kept)
    return Merge(merged, kept, overridden)


def _is_servers(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(s, dict) and "address" in s and "port" in s
                                           for s in value)


def _server_key(server: dict[str, Any]) -> str:
    return join_host_port(str(server["address"]), server["port"])


def _keyed(servers: Any) -> Any:
    return {_server_key(s): s for s in servers} if _is_servers(servers) else servers


def _merge(base: Any, ours: Any, theirs: Any, path: str, kept: list[str], overridden: list[str]) -> Any:
    if ours == base:
        return theirs  # no runtime change here
    if theirs == ours:
        return theirs
    servers = all(x is _MISSING or _is_servers(x) for x in (base, ours, theirs)) and \
        isinstance(ours, list) and isinstance(theirs, list)
    if servers:
        merged = _merge(_keyed(base) if base is not _MISSING else _MISSING, _keyed(ours),
                        _keyed(theirs), path, kept, overridden)
        return list(merged.values())
    if isinstance(ours, dict) and isinstance(theirs, dict) and (base is _MISSING or isinstance(base, dict)):
        b = base if isinstance(base, dict) else {}
        out: dict[str, Any] = {}
        for key in [*theirs, *(k for k in ours if k not in theirs)]:
            value = _merge(b.get(key, _MISSING), ours.get(key, _MISSING), theirs.get(key, _MISSING),
                           f"{path}.{key}" if path else str(key), kept, overridden)
            if value is not _MISSING:
                out[key] = value
        return out
    if theirs == base:
        kept.append(f"{path} = {_show(ours)}")
        return ours
    overridden.append(f"{path}: runtime {_show(ours)}, file {_show(theirs)}")
    return theirs


def _show(value: Any) -> str:
    return "(removed)" if value is _MISSING else repr(value)


# -- the reload an operator asks for ----------------------------------------------------

def _count(node: NodeLike, result: str) -> None:
    results = getattr(node, "reload_results", None)  # status and /metrics show them
    if results is not None:
        results[result] = results.get(result, 0) + 1


async def reload_from_source(node: NodeLike) -> dict[str, Any]:
    """Read the node's source again (SIGHUP, `fulcrum ctl reload`, `fulcrum reload`), keep
    runtime changes the file did not touch, apply. Raises ConfigError/ReloadError with
    nothing changed. Returns what happened, for whoever asked."""
    from fulcrum.sdnotify import notify

    if node.loader is None:
        raise ReloadError([("reload", "this node has no file to re-read (configuration came from the command line)")])
    notify("RELOADING=1", "STATUS=reloading")
    try:
        new = node.loader()
        merge = merge_runtime(node.source_config, node.config, new)
        await node.reload(merge.config)
    except ConfigError as err:
        log.error("reload rejected, keeping the running configuration: %s", str(err).replace("\n", "; "))
        notify("READY=1", "STATUS=reload rejected; running the previous configuration")
        _count(node, "rejected")
        raise
    _count(node, "applied")
    node.source_config = new
    for note in merge.kept:
        log.info("reload: runtime change kept (the file did not change it): %s", note)
    for note in merge.overridden:
        log.warning("reload: the file overrides a runtime change: %s", note)
    notify("READY=1", f"STATUS=serving {len(merge.config.services)} service(s)")
    return {"reloaded": True, "source": getattr(node, "config_path", None),
            "services": len(merge.config.services), "pools": len(merge.config.pools),
            "runtime_kept": merge.kept, "runtime_overridden": merge.overridden}
