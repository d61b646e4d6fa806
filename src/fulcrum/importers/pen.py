"""pen's two languages, read into the one model.

1. The command line, `pen [options] [host:]port server...`, parsed as pen 0.34 parses
   it: POSIX getopt with pen's own option string (clustered flags `-fdr`, option
   arguments attached `-x6144` or separate `-x 6144`, and, as glibc does, options
   after the positional arguments).
2. The control language (penctl(1)), which is also the syntax of -F files and -o
   options: `server 0 address 127.0.0.1 port 9001 weight 2`, `blacklist 30`, `hash`, ...

Both translate into calls of the one command table (fulcrum.control.commands), so
"-c 100", "clients_max 100" in a -F file and `clients_max 100` on the control port
change the same setting the same way. docs/pen.md lists every option and command."""

from __future__ import annotations

import getopt
import socket
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from fulcrum.config.errors import ConfigError
from fulcrum.config.load import load_dict
from fulcrum.config.model import Config
from fulcrum.config.serverspec import parse_server_spec
from fulcrum.config.types import join_host_port, parse_duration, split_host_port
from fulcrum.control.commands import CommandError, edit_dict, lookup

# pen 0.34.1's getopt string, built with SSL (Debian's build): `strings $(which pen)`.
PEN_OPTIONS = "B:C:F:O:S:T:b:c:e:i:j:l:m:o:p:q:t:u:w:x:DHNPQWXUadfhnrsE:K:G:A:ZRL:"

SERVICE = "pen"
POOL = "pen"

# pen's defaults (pen -h prints them), where they differ from fulcrum's model defaults.
PEN_CONNECTIONS_MAX = 500
PEN_CLIENTS_MAX = 2048
PEN_LISTEN_QUEUE = 500  # pen: listen_queue = CONNECTIONS_MAX
PEN_LISTEN_QUEUE_MIN = 50
CONTROL_HOST = "127.0.0.1"  # pen binds a bare -C port to 0.0.0.0; fulcrum to localhost

_TLS = "TLS termination is not available in `fulcrum pen` (pen's -E/-K/-G/-A/-Z/-R/-L)"
REFUSED_OPTIONS = {
    "-B": "the abuse server needs pen's access lists, which fulcrum does not have; filter clients with nftables",
    "-U": "UDP is not supported: fulcrum balances TCP",
    "-N": "pen 0.34 lists -N in its help but does not implement it (it prints its usage); use -h for hash selection",
    "-a": "fulcrum does not dump relayed traffic (pen -dd -a); use tcpdump",
    "-i": "installing a Windows service is not supported",
    "-j": "fulcrum does not chroot itself; confine it with systemd (RootDirectory=, ProtectSystem=) or a container",
    "-m": "the multi-accept batch size is not adjustable: the event loop accepts pending connections in batches itself",
    "-E": _TLS, "-K": _TLS, "-G": _TLS, "-A": _TLS, "-Z": _TLS, "-R": _TLS, "-L": _TLS,
}
# Options pen itself accepts and does nothing with: accepted, with pen's own notice.
OBSOLETE_OPTIONS = {
    "-D": "pen 0.26.0 removed the delayed forward feature, making -D obsolete",
    "-n": "pen 0.26.0 and up use only nonblocking sockets, making -n obsolete",
    "-Q": "kqueue is chosen automatically where it exists, making -Q obsolete",
    "-S": "as of pen 0.28.1 the server table grows as needed, making -S obsolete; fulcrum has no server limit",
    "-P": "fulcrum's event loop (uvloop or asyncio on epoll) is used; -P (poll) changes nothing",
}


@dataclass
class PenInvocation:
    """A pen command line: the configuration plus the process-level options."""

    config: Config
    foreground: bool = False  # -f; pen daemonizes by default
    debug: int = 0  # -d, repeatable
    logfile: str | None = None  # -l
    user: str | None = None  # -u
    exit_enabled: bool = False  # -X: allow `exit` on the control port
    config_file: str | None = None  # -F: re-read on SIGHUP, default target of `write`
    notices: list[str] = field(default_factory=list)  # accepted options that change nothing


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


# -- the command line --------------------------------------------------------------------

def _port(text: str, what: str) -> int:
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
            end = part.find("]")
            host, port_text = part[1:end], part[end + 2:] if end > 0 else ""
            if end < 0 or part[end + 1:end + 2] != ":":
                raise ConfigError.at("pen listen", f"{part!r}: expected [address]:port")
        elif ":" in part:
            host, port_text = part.rsplit(":", 1)
        else:
            host, port_text = "0.0.0.0", part
        try:
            host, port = split_host_port(join_host_port(host or "0.0.0.0", _port(port_text, "pen listen")))
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
        fields[port_at] = str(_port(fields[port_at], f"{what} {text!r}"))
    try:
        return parse_server_spec(head + sep + ":".join(fields), default_port)
    except ValueError as err:
        raise ConfigError.at(f"{what} {text!r}", str(err)) from None


def _control_endpoint(text: str) -> str:
    if "/" in text:
        raise ConfigError.at("pen -C", f"{text!r}: Unix-domain control sockets are not supported; give [host:]port")
    if ":" not in text or text.startswith(":") and text.count(":") == 1:
        return join_host_port(CONTROL_HOST, _port(text.lstrip(":"), "pen -C"))
    return parse_listen(text)[0]


def _whole(text: str, what: str, minimum: int = 0) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError.at(what, f"{text!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError.at(what, f"must be at least {minimum}")
    return value


def _seconds(text: str, what: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as err:
        raise ConfigError.at(what, str(err)) from None


def _pen_defaults() -> dict[str, Any]:
    """pen's behaviour with no options, in the model's terms."""
    return {
        "services": {SERVICE: {"listen": [], "pool": POOL, "backlog": PEN_LISTEN_QUEUE}},
        "pools": {POOL: {
            "scheduler": "rr",
            "servers": [],
            # pen has no health checks: a refused connect blacklists the server for -b seconds.
            "health": {"kind": "none", "passive": True},
            "sticky": {"mode": "source", "table_size": PEN_CLIENTS_MAX, "expiry": 0},
            "stubborn": False,
            "blacklist": 30,
        }},
        "timeouts": {"connect": 3, "idle": 0},  # pen: connect timeout 3 s, no idle timeout
        "max_connections": PEN_CONNECTIONS_MAX,
        "control": {},
        "log": {},
    }


def parse_pen_argv(argv: list[str]) -> PenInvocation:
    """Read a pen command line (without the program name) into a PenInvocation.

    Raises ConfigError (exit status 2) naming the option for anything fulcrum does
    not support or cannot read."""
    try:
        options, positional = getopt.gnu_getopt(list(argv), PEN_OPTIONS)
    except getopt.GetoptError as err:
        option = f"-{err.opt}" if err.opt else "pen"
        reason = "needs an argument" if "requires argument" in err.msg else \
            "is not a pen option (see `pen -h`; docs/pen.md lists what fulcrum accepts)"
        raise ConfigError.at(f"pen {option}", reason) from None
    data = _pen_defaults()
    pool = data["pools"][POOL]
    invocation = PenInvocation(config=None)  # type: ignore[arg-type]  # set below
    deferred: list[tuple[str, list[str]]] = []  # option -> control words, applied after the servers
    emergency: str | None = None
    for option, value in options:
        what = f"pen {option}"
        if option in REFUSED_OPTIONS:
            raise ConfigError.at(what, REFUSED_OPTIONS[option])
        if option in OBSOLETE_OPTIONS:
            invocation.notices.append(f"{option}: {OBSOLETE_OPTIONS[option]}")
        elif option == "-f":
            invocation.foreground = True
        elif option == "-d":
            invocation.debug += 1
        elif option == "-X":
            invocation.exit_enabled = True
        elif option == "-u":
            invocation.user = value
        elif option == "-F":
            invocation.config_file = value
        elif option == "-p":
            data["control"]["pidfile"] = value
        elif option == "-l":
            if ":" in value and not value.startswith("/"):
                raise ConfigError.at(what, f"{value!r}: logging to a penlogd server is not supported; give a file")
            invocation.logfile = value
        elif option == "-C":
            data["control"]["pen_port"] = _control_endpoint(value)
        elif option == "-q":
            backlog = _whole(value, what, 1)
            if backlog < PEN_LISTEN_QUEUE_MIN:
                invocation.notices.append(f"-q: listen_queue bumped to {PEN_LISTEN_QUEUE_MIN}, as pen does")
            data["services"][SERVICE]["backlog"] = max(backlog, PEN_LISTEN_QUEUE_MIN)
        elif option == "-t":
            if _seconds(value, what) <= 0:
                raise ConfigError.at(what, "the connect timeout must be at least 1 second")
            deferred.append((option, ["timeout", value]))
        elif option in ("-x", "-c"):
            _whole(value, what, 1 if option == "-c" else 0)
            deferred.append((option, ["conn_max" if option == "-x" else "clients_max", value]))
        elif option in ("-b", "-T"):
            _seconds(value, what)
            deferred.append((option, ["blacklist" if option == "-b" else "tracking", value]))
        elif option == "-w":
            deferred.append((option, ["web_stats", value]))
        elif option == "-e":
            emergency = value
        elif option in ("-o", "-O"):
            deferred.append((option, value.split()))
        else:  # the flags: -h -r -s -W -H
            word = {"-h": "hash", "-r": "roundrobin", "-s": "stubborn", "-W": "weight", "-H": "http"}[option]
            deferred.append((option, [word]))
    if positional:
        data["services"][SERVICE]["listen"] = parse_listen(positional[0])
    listen_port = int(data["services"][SERVICE]["listen"][0].rsplit(":", 1)[1]) if positional else None
    for spec in positional[1:]:
        pool["servers"].append(parse_server(spec, listen_port))
    if emergency is not None:
        pool["emergency"] = parse_server(emergency, listen_port, "pen -e")
    for option, words in deferred:
        _apply_line(data, words, f"pen {option}", invocation)
    if invocation.config_file:
        apply_pen_file(data, invocation.config_file, invocation, command_line_servers=len(positional[1:]))
    if invocation.debug:
        data["log"]["level"] = "debug"
    if invocation.logfile:
        data["log"]["file"] = invocation.logfile
    _check_complete(data)
    _weights_as_pen_reads_them(pool, invocation)
    invocation.config = load_dict(data)
    return invocation


def _check_complete(data: dict[str, Any]) -> None:
    if not data["services"][SERVICE]["listen"]:
        raise ConfigError.at("pen", "no listen address: give [host:]port (or a `listen` line in the -F file)")
    if not data["pools"][POOL]["servers"]:
        raise ConfigError.at("pen", "no servers: give host[:port] after the listen address (or `server N address A` lines)")


def _weights_as_pen_reads_them(pool: dict[str, Any], invocation: PenInvocation) -> None:
    """pen ignores weights unless the weight scheduler (-W) is on, and its servers have
    weight 0 when none is written. In fulcrum weight 0 quiesces a server, so outside
    the weight scheduler an explicit 0 is read as 1: the server stays in use, as in pen."""
    if pool["scheduler"] == "weight":
        return
    for i, server in enumerate(pool["servers"]):
        if server.get("weight") == 0:
            server["weight"] = 1
            invocation.notices.append(f"server {i}: weight 0 read as 1 (pen ignores weights without -W)")


def _apply_line(data: dict[str, Any], words: list[str], where: str, invocation: PenInvocation,
                depth: int = 0, command_line_servers: int = 0) -> None:
    """Apply one control-language line to a configuration being built."""
    if words[:1] == ["server"] and len(words) > 1 and words[1].isdigit() \
            and int(words[1]) < command_line_servers:
        # pen reads -F before it fills its server table from the command line, so
        # the command line's server N replaces the file's server N entirely.
        invocation.notices.append(f"{where}: server {words[1]} is given on the command line, which wins as in pen")
        return
    try:
        action = translate_pen_command(words, data)
        for name, args in action.calls:
            if not lookup(name).edits_config:
                raise PenRefused(f"{' '.join(words)}: {name} acts on a running balancer; use the control port")
            edit_dict(data, name, {k: v for k, v in args.items() if v is not None})
    except CommandError as err:
        raise ConfigError.at(where, str(err)) from None
    if action.notice:
        invocation.notices.append(f"{where}: {action.notice}")
    if action.process is None:
        return
    verb, arg = action.process
    if verb == "debug" and arg is not None:
        invocation.debug = _whole(arg, where)
    elif verb == "log" and arg is not None:
        invocation.logfile = arg or None
    elif verb == "include" and arg:
        if depth > 8:
            raise ConfigError.at(where, "include nested too deeply")
        apply_pen_file(data, arg, invocation, depth + 1, command_line_servers)
    elif verb in ("exit", "write"):
        raise ConfigError.at(where, f"{verb} acts on a running balancer; use the control port")


def apply_pen_file(data: dict[str, Any], path: str, invocation: PenInvocation, depth: int = 0,
                   command_line_servers: int = 0) -> None:
    """Apply a pen configuration file (penctl commands, one per line) to `data`.

    As in pen, settings in the file override the command line's options, but servers
    given on the command line replace the file's servers with the same numbers."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as err:
        raise ConfigError.at(f"pen -F {path}", err.strerror or str(err)) from None
    for number, line in enumerate(lines, 1):
        _apply_line(data, line.split(), f"{path}:{number}", invocation, depth, command_line_servers)


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
