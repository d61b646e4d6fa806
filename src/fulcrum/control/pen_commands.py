"""pen's control language (penctl(1); also the syntax of -F files and -o options) and
pen's address syntax, translated into calls of the one command table.

`server 0 address 127.0.0.1 port 9001 weight 2`, `blacklist 30`, `hash`, ... each become
calls such as ("server.weight", {"server": "0", "weight": "2"}); the control port runs
them against the live node, the -F reader against the configuration it is building.
Also pen's `write` format (render_pen_config), which reads back to the same configuration."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fulcrum.config.errors import ConfigError
from fulcrum.config.model import Config
from fulcrum.config.serverspec import parse_server_spec
from fulcrum.config.types import join_host_port, split_bracketed, split_host_port
from fulcrum.control.errors import CommandError

# -- pen's scheduler flags -----------------------------------------------------------

# pen's initial_server(): prio wins over weight, weight over hash, hash over round robin.
PEN_PRECEDENCE = ("prio", "weight", "hash", "rr")


def pen_mode_flags(pool: dict[str, Any]) -> dict[str, bool]:
    """pen's mode flags for a pool: hash, roundrobin, stubborn, weight, prio."""
    scheduler = pool.get("scheduler", "rr")
    return {
        "hash": scheduler == "hash",
        "roundrobin": (pool.get("sticky") or {}).get("mode", "none") == "none",
        "stubborn": bool(pool.get("stubborn")),
        "weight": scheduler == "weight",
        "prio": scheduler == "prio",
    }


def _scheduler_after(current: str, word: str, on: bool) -> str:
    """The scheduler after pen's `hash`/`weight`/`prio` (on) or `no hash`... (off).

    Only the strongest flag is kept (the scheduler name), so `no weight` after
    `-h -W` gives rr where pen would fall back to hash."""
    if not on:
        return "rr" if current == word else current
    if current not in PEN_PRECEDENCE:
        return word
    return word if PEN_PRECEDENCE.index(word) < PEN_PRECEDENCE.index(current) else current


# -- the control language ------------------------------------------------------------------

Call = tuple[str, dict[str, Any]]


@dataclass
class PenAction:
    """What one control-language line means.

    calls: command-table calls to make, in order; query: the pen word whose value to
    print afterwards (pen prints the value after setting it too); process: a
    process-level verb (debug, log, include, exit, write, status) with its argument;
    notice: accepted, changes nothing, say why."""

    calls: list[Call] = field(default_factory=list)
    query: str | None = None
    process: tuple[str, str | None] | None = None
    notice: str | None = None


class PenRefused(CommandError):
    """A pen command fulcrum deliberately does not support."""


_QUERIES_WITH_SETTER = {
    "blacklist": ("pool.blacklist", "seconds"),
    "clients_max": ("pool.clients_max", "size"),
    "conn_max": ("conn_max", "limit"),
    "timeout": ("timeout.connect", "seconds"),
    "tracking": ("pool.tracking", "seconds"),
    "idle_timeout": ("timeout.idle", "seconds"),
    "web_stats": ("control.status_file", "path"),
    "listen": ("service.listen", "listen"),
}
_PURE_QUERIES = {"mode", "servers", "status", "pid", "control", "recent"}
_DEFAULT_ONLY = {  # pen writes these defaults into -F files; other values are refused
    "client_acl": "0", "control_acl": "0", "tcp_fastclose": "off",
}
_NO_DEFAULTS = {"abort_on_error", "acl", "ascii", "dummy", "keepalive", "tcp_nodelay",
                "transparent", "block", "delayed_forward"}
_EVENT_LOOPS = {"epoll", "poll", "select", "kqueue"}
_REFUSED_WORDS = {
    "abort_on_error": "fulcrum does not abort on errors; it logs them",
    "acl": "access lists are not supported; filter clients with nftables",
    "ascii": "fulcrum does not dump relayed traffic; use tcpdump",
    "close": "fulcrum does not number connections; use `server N blacklist` or disable the server",
    "connection": "fulcrum does not number connections; see `status`",
    "socket": "fulcrum does not number sockets",
    "dsr_if": "direct server return is a service topology in fulcrum: topology = 'dsr'",
    "dsr_ip": "direct server return is a service topology in fulcrum: topology = 'dsr'",
    "dummy": "the dummy web server is not supported",
    "idlers": "idle backend connections are not supported",
    "keepalive": "SO_KEEPALIVE to servers is not supported",
    "pending_max": "fulcrum does not limit pending connects separately; use conn_max",
    "source": "choosing the source address towards servers is not supported",
    "tarpit_acl": "tarpitting needs access lists, which fulcrum does not have",
    "tcp_nodelay": "TCP_NODELAY is not set by fulcrum's relay",
    "transparent": "transparent proxying is the 'nat' topology in fulcrum",
    "tcp_fastclose": "fulcrum passes half-closes through; only `tcp_fastclose off` is supported",
    "client_acl": "access lists are not supported; only `client_acl 0` (no list) is",
    "control_acl": "access lists are not supported; only `control_acl 0` (no list) is",
}


def translate_pen_command(words: list[str], data: dict[str, Any]) -> PenAction:
    """Translate one control-language line (already split into words) into an action.

    `data` is the configuration as a dict (`Config.model_dump()` or the dict being
    built from a command line): flags and new-server numbering depend on it.
    Raises PenRefused for commands fulcrum does not support and CommandError for
    malformed ones."""
    if not words or words[0].startswith("#"):
        return PenAction()
    word, rest = words[0], words[1:]
    if word.startswith("ssl_"):
        raise PenRefused(f"{word}: TLS termination is not available in `fulcrum pen`")
    if word == "no":
        return _translate_no(rest, data)
    if word == "listen" and rest:
        try:
            listen = ",".join(parse_listen(rest[0]))
        except ConfigError as err:
            raise CommandError(str(err)) from None
        return PenAction(calls=[("service.listen", {"listen": listen})], query=word)
    if word in _QUERIES_WITH_SETTER:
        name, arg = _QUERIES_WITH_SETTER[word]
        calls = [(name, {arg: rest[0]})] if rest else []
        return PenAction(calls=calls, query=word)
    if word == "mode" and rest:  # fulcrum: `mode wlc` sets any scheduler
        return PenAction(calls=[("pool.scheduler", {"scheduler": rest[0]})], query="mode")
    if word in _PURE_QUERIES:
        return PenAction(query=word)
    if word in _DEFAULT_ONLY:
        if rest and rest[0] != _DEFAULT_ONLY[word]:
            raise PenRefused(f"{word} {rest[0]}: {_REFUSED_WORDS[word]}")
        return PenAction(query=word)
    if word in ("hash", "weight", "prio"):
        return _mode_change(word, True, data)
    if word == "roundrobin":
        return PenAction(calls=[("pool.sticky", {"mode": "none"})])
    if word == "stubborn":
        return PenAction(calls=[("pool.stubborn", {"on": True})])
    if word == "http":
        return PenAction(calls=[("service.forwarded_for", {"on": True})])
    if word == "server":
        return _translate_server(rest, data)
    if word in ("debug", "log"):
        return PenAction(process=(word, rest[0] if rest else None), query=word)
    if word in ("include", "exit", "write"):
        return PenAction(process=(word, rest[0] if rest else None))
    if word in _EVENT_LOOPS:
        return PenAction(notice=f"{word}: fulcrum's event loop is used; the event mechanism is not selectable")
    if word in ("block", "delayed_forward"):
        return PenAction(notice=f"{word}: obsolete since pen 0.26.0 and does nothing")
    if word in _REFUSED_WORDS:
        raise PenRefused(f"{word}: {_REFUSED_WORDS[word]}")
    raise PenRefused(f"do_cmd: ignoring command starting with '{word}'")


def _translate_no(rest: list[str], data: dict[str, Any]) -> PenAction:
    if not rest:
        return PenAction()
    word = rest[0]
    if word in ("hash", "weight", "prio"):
        return _mode_change(word, False, data)
    if word == "roundrobin":
        return PenAction(calls=[("pool.sticky", {"mode": "source"})])
    if word == "stubborn":
        return PenAction(calls=[("pool.stubborn", {"on": False})])
    if word == "http":
        return PenAction(calls=[("service.forwarded_for", {"on": False})])
    if word == "web_stats":
        return PenAction(calls=[("control.status_file", {"path": ""})])
    if word == "log":
        return PenAction(process=("log", ""))
    if word in _NO_DEFAULTS:  # `no acl N`, `no ascii`, ...: the state fulcrum is always in
        return PenAction()
    raise PenRefused(f"do_cmd: ignoring command starting with 'no {word}'")


def _mode_change(word: str, on: bool, data: dict[str, Any]) -> PenAction:
    pool = _only_pool(data)
    scheduler = _scheduler_after(pool.get("scheduler", "rr"), word, on)
    return PenAction(calls=[("pool.scheduler", {"scheduler": scheduler})])


def _only_pool(data: dict[str, Any]) -> dict[str, Any]:
    pools = data.get("pools") or {}
    if len(pools) != 1:
        raise CommandError(f"pen's commands address one pool; this configuration has {len(pools)}")
    found: dict[str, Any] = next(iter(pools.values()))
    return found


_SERVER_FIELDS = {"address", "port", "max", "hard", "weight", "prio", "blacklist", "acl"}


def _translate_server(rest: list[str], data: dict[str, Any]) -> PenAction:
    """`server N [acl A] [address A] [port P] [max M] [hard H] [blacklist T] [weight W] [prio P]`."""
    if not rest:
        raise CommandError("server: expected server N followed by name value pairs")
    ref, pairs = rest[0], rest[1:]
    if len(pairs) % 2:
        raise CommandError(f"server {ref}: {pairs[-1]!r} has no value")
    values: dict[str, str] = {}
    for key, value in zip(pairs[::2], pairs[1::2], strict=True):
        if key not in _SERVER_FIELDS:
            raise CommandError(f"server {ref}: unknown field {key!r} (acl, address, port, max, hard, blacklist, weight, prio)")
        values[key] = value
    if values.pop("acl", "0") != "0":
        raise PenRefused(f"server {ref} acl: {_REFUSED_WORDS['acl']}")
    pool, index_text = ref.split("/", 1) if "/" in ref else (None, ref)
    where = {"pool": pool} if pool else {}
    calls: list[Call] = []
    if index_text.isdigit():
        pools = data.get("pools") or {}
        if pool is not None and pool not in pools:
            raise CommandError(f"no pool named {pool!r}")
        count = len((pools[pool] if pool else _only_pool(data)).get("servers", []))
        index = int(index_text)
        if index > count:
            raise CommandError(f"server {ref}: there are {count} servers; add server {count} first")
        if index == count:  # pen grows its server table: `server N address A` adds one
            if "address" not in values:
                raise CommandError(f"server {ref}: a new server needs an address")
            new = {key: values.pop(key, None) for key in ("address", "port", "max", "hard", "weight", "prio")}
            calls.append(("server.add", {**new, **where}))
    if "address" in values or "port" in values:
        calls.append(("server.move", {"server": ref, "address": values.pop("address", None),
                                      "port": values.pop("port", None), **where}))
    for key, name, arg in (("max", "server.max", "limit"), ("hard", "server.hard", "limit"),
                           ("weight", "server.weight", "weight"), ("prio", "server.prio", "prio"),
                           ("blacklist", "server.blacklist", "seconds")):
        if key in values:
            calls.append((name, {"server": ref, arg: values.pop(key), **where}))
    return PenAction(calls=calls)


# -- addresses: [host:]port and host[:port[:soft[:hard[:weight[:prio]]]]] ---------------

def pen_port(text: str, what: str) -> int:
    """A port number, or a service name from /etc/services as pen's getport() allows."""
    if text.isdigit():
        return int(text)
    try:
        return socket.getservbyname(text, "tcp")
    except OSError:
        raise ConfigError.at(what, f"{text!r} is neither a port number nor a service name") from None


def parse_listen(text: str) -> list[str]:
    """pen's `[host:]port`: a bare port listens on 0.0.0.0 (all IPv4 addresses, as pen does).

    pen splits at the last ':' so an IPv6 address may be written bare (`:::8080`) or in
    brackets (`[::]:8080`). fulcrum also takes several addresses separated by commas
    (`0.0.0.0:8080,[::]:8080`): pen listens on one."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if "/" in part:
            raise ConfigError.at("pen listen", f"{part!r}: Unix-domain sockets are not supported; give [host:]port")
        if part.startswith("["):
            try:
                host, rest = split_bracketed(part)
            except ValueError:
                rest = ""
            if not rest.startswith(":"):
                raise ConfigError.at("pen listen", f"{part!r}: expected [address]:port")
            port_text = rest[1:]
        elif ":" in part:
            host, port_text = part.rsplit(":", 1)
        else:
            host, port_text = "0.0.0.0", part
        try:
            host, port = split_host_port(join_host_port(host or "0.0.0.0", pen_port(port_text, "pen listen")))
        except ValueError as err:
            raise ConfigError.at("pen listen", str(err)) from None
        out.append(join_host_port(host, port))
    if not out:
        raise ConfigError.at("pen listen", f"{text!r}: no address")
    return out


def parse_server(text: str, default_port: int | None, what: str = "pen server") -> dict[str, Any]:
    """`host[:port[:soft[:hard[:weight[:prio]]]]]`, IPv6 as `[addr]:port...`; port names allowed."""
    head, sep, tail = text.partition("]") if text.startswith("[") else ("", "", text)
    fields = tail.split(":")
    port_at = 1  # in `host:port:...` and in `]:port:...` the port is the second field
    if len(fields) > port_at and fields[port_at] and not fields[port_at].isdigit():
        fields[port_at] = str(pen_port(fields[port_at], f"{what} {text!r}"))
    try:
        return parse_server_spec(head + sep + ":".join(fields), default_port)
    except ValueError as err:
        raise ConfigError.at(f"{what} {text!r}", str(err)) from None


# -- writing pen's configuration file (`write`) ------------------------------------------------

def _secs(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


def render_pen_config(config: Config, path: str | None = None) -> str:
    """The running configuration as a pen -F file, as pen's `write` produces it.

    Read back by `fulcrum pen -F FILE [host:]port` (and by pen). Settings pen
    cannot express (server state, backup, other schedulers than pen's) are written
    as fulcrum's own lines (`mode wlc`) or not at all."""
    if len(config.services) != 1 or len(config.pools) != 1:
        raise CommandError("pen's file format holds one service and one pool")
    service = next(iter(config.services.values()))
    pool = next(iter(config.pools.values()))
    flags = pen_mode_flags(pool.model_dump())
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    header = ["# pen"]
    header.append(f"-c {pool.sticky.table_size}")
    if pool.emergency:
        header.append(f"-e {pool.emergency.key}")
    if config.control.pidfile:
        header.append(f"-p '{config.control.pidfile}'")
    header.append(f"-x {config.max_connections}")
    if path:
        header.append(f"-F '{path}'")
    if config.control.pen_port:
        header.append(f"-C {config.control.pen_port}")
    header.append(",".join(str(e) for e in service.listen))
    lines = [f"# Generated by fulcrum {stamp}", " ".join(header)]
    lines += [f"blacklist {_secs(pool.blacklist)}", "client_acl 0", "control_acl 0",
              f"clients_max {pool.sticky.table_size}", f"conn_max {config.max_connections}",
              "hash" if flags["hash"] else "no hash", "http" if service.forwarded_for else "no http",
              f"log {config.log.file}" if config.log.file else "no log",
              "roundrobin" if flags["roundrobin"] else "no roundrobin"]
    for i, server in enumerate(pool.servers):
        lines.append(f"server {i} acl 0 address {server.address} port {server.port} "
                     f"max {server.max_connections} hard {server.hard_limit} "
                     f"weight {server.weight} prio {server.priority}")
    timeouts = config.service_timeouts(next(iter(config.services)))
    lines += ["stubborn" if flags["stubborn"] else "no stubborn", "tcp_fastclose off", "no tcp_nodelay",
              f"timeout {_secs(timeouts.connect)}", f"idle_timeout {_secs(timeouts.idle)}",
              f"tracking {_secs(pool.sticky.expiry)}",
              f"web_stats {config.control.status_file}" if config.control.status_file else "no web_stats",
              "weight" if flags["weight"] else "no weight", "prio" if flags["prio"] else "no prio"]
    if pool.scheduler not in PEN_PRECEDENCE:
        lines.append(f"mode {pool.scheduler}")
    return "\n".join(lines) + "\n"
