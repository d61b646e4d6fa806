"""Apache httpd mod_proxy / mod_proxy_balancer configuration, read into the one model.

    fulcrum import apache httpd.conf -o fulcrum.toml

Mapped: <VirtualHost addr:port> (one http service per listen address; several virtual hosts
on one address become Host routes), ServerName/ServerAlias, ProxyPass/ProxyPassReverse,
ProxyPreserveHost, <Proxy balancer://name> with BalancerMember (route, loadfactor, lbset,
status, retry) and ProxySet (lbmethod, stickysession, nofailover, timeout), the same
directives outside a <Proxy> block naming the balancer, SSLEngine/SSLCertificateFile/
SSLCertificateKeyFile. Every other directive, and every option without a fulcrum meaning, is
reported as a warning with its line number: nothing is dropped silently."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fulcrum.config.load import load_dict

LBMETHODS = {"byrequests": "byrequests", "bytraffic": "bytraffic", "bybusyness": "bybusyness"}
# Directives that configure Apache itself (its files, logs, modules): warned about as such.
APACHE_ITSELF = {"serveradmin", "documentroot", "errorlog", "customlog", "loglevel", "loadmodule",
                 "directoryindex", "options", "allowoverride", "require", "directory", "files"}


@dataclass
class Directive:
    name: str  # lower-case
    args: list[str]
    line: int
    children: list[Directive] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"line {self.line}"


def parse(text: str) -> list[Directive]:
    """Apache's syntax: one directive per line, `\\` continues a line, `#` starts a comment
    line, `<Section args>` ... `</Section>` nest."""
    root: list[Directive] = []
    stack: list[Directive] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = (pending + line).strip(), ""
        if not line or line.startswith("#"):
            continue
        if line.startswith("</"):
            if not stack:
                raise ValueError(f"line {start}: {line} closes nothing")
            stack.pop()
            continue
        opening = line.startswith("<") and line.endswith(">")
        words = shlex.split(line[1:-1] if opening else line, posix=True)
        directive = Directive(words[0].lower(), words[1:], start)
        (stack[-1].children if stack else root).append(directive)
        if opening:
            stack.append(directive)
    if stack:
        raise ValueError(f"line {stack[-1].line}: <{stack[-1].name}> is not closed")
    return root


@dataclass
class Balancer:
    name: str
    servers: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)


@dataclass
class Mapping:
    path: str
    pool: str
    target_path: str
    line: int


@dataclass
class VirtualHost:
    listen: list[str]
    names: list[str] = field(default_factory=list)
    mappings: list[Mapping] = field(default_factory=list)
    preserve_host: bool = False  # Apache's default is Off
    reverse: bool = False
    cert: str | None = None
    key: str | None = None
    tls: bool = False
    line: int = 0


class ApacheImport:
    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.balancers: dict[str, Balancer] = {}
        self.vhosts: list[VirtualHost] = []
        self.global_timeout: float | None = None

    def warn(self, where: str, message: str) -> None:
        self.warnings.append(f"{where}: {message}")

    # -- reading ---------------------------------------------------------------------

    def read(self, directives: list[Directive]) -> None:
        top = VirtualHost(listen=[], line=0)  # ProxyPass outside any <VirtualHost>
        for d in directives:
            if d.name == "virtualhost":
                self.read_vhost(d)
            elif d.name == "proxy":
                self.read_proxy_block(d)
            elif d.name == "ifmodule":
                self.read(d.children)
            else:
                self.read_vhost_directive(top, d)
        if top.mappings:
            self.warn("top level", "ProxyPass outside a <VirtualHost>: served on 0.0.0.0:80")
            top.listen = ["0.0.0.0:80"]
            self.vhosts.insert(0, top)

    def read_vhost(self, d: Directive) -> None:
        listen = []
        for addr in d.args:
            host, _, port = addr.rpartition(":")
            if not port.isdigit():
                host, port = addr, "80"
                self.warn(d.where, f"<VirtualHost {addr}> has no port: 80 assumed")
            if host in ("*", "_default_", ""):
                host = "0.0.0.0"
            listen.append(f"{host}:{port}")
        vhost = VirtualHost(listen=listen, line=d.line)
        for child in d.children:
            self.read_vhost_directive(vhost, child)
        self.vhosts.append(vhost)

    def read_vhost_directive(self, vhost: VirtualHost, d: Directive) -> None:
        name, args = d.name, d.args
        if name == "servername" and args:
            vhost.names.insert(0, args[0].split(":")[0].lower().split("://")[-1])
        elif name == "serveralias":
            vhost.names += [a.lower() for a in args]
        elif name == "proxypass":
            self.read_proxypass(vhost, d)
        elif name == "proxypassreverse":
            vhost.reverse = True
        elif name == "proxypreservehost" and args:
            vhost.preserve_host = args[0].lower() == "on"
        elif name == "proxy":
            self.read_proxy_block(d)
        elif name == "balancermember":
            self.read_member(d, args[0] if args and args[0].startswith("balancer://") else None)
        elif name == "proxyset":
            self.read_proxyset(d, None)
        elif name == "sslengine" and args:
            vhost.tls = args[0].lower() == "on"
        elif name == "sslcertificatefile" and args:
            vhost.cert = args[0]
        elif name == "sslcertificatekeyfile" and args:
            vhost.key = args[0]
        elif name == "proxytimeout" and args:
            self.global_timeout = float(args[0])
        elif name == "proxyrequests":
            if args and args[0].lower() == "on":
                self.warn(d.where, "ProxyRequests On (a forward proxy) is not supported: not mapped")
            # Off is what a reverse proxy is: nothing to map
        elif name == "location" and any(c.name == "sethandler" and c.args[:1] == ["balancer-manager"]
                                         for c in d.children):
            self.warn(d.where, "the balancer-manager page is not mapped: use fulcrum's admin API or `fulcrum ctl`")
        elif name == "ifmodule":
            for child in d.children:
                self.read_vhost_directive(vhost, child)
        elif name in APACHE_ITSELF:
            self.warn(d.where, f"{name_of(d)} configures Apache itself: not mapped")
        else:
            self.warn(d.where, f"{name_of(d)} is not mapped")

    def read_proxypass(self, vhost: VirtualHost, d: Directive) -> None:
        if len(d.args) < 2:
            self.warn(d.where, "ProxyPass without a path and a target: not mapped")
            return
        path, target, *options = d.args
        if target == "!":
            self.warn(d.where, f"ProxyPass {path} ! (an exclusion) is not mapped: those requests go to the pools too")
            return
        url = urlsplit(target)
        if url.scheme == "balancer":
            pool = url.hostname or "balancer"
            self.balancers.setdefault(pool, Balancer(pool))
        elif url.scheme in ("http", "https"):
            pool = f"{url.hostname}_{url.port or 80}".replace(".", "_").replace(":", "_")
            balancer = self.balancers.setdefault(pool, Balancer(pool))
            if not balancer.servers:
                balancer.servers.append({"address": url.hostname, "port": url.port or (443 if url.scheme == "https" else 80)})
            if url.scheme == "https":
                self.warn(d.where, f"{target}: TLS to servers is not supported; plain HTTP is used")
        else:
            self.warn(d.where, f"ProxyPass target {target!r} ({url.scheme or 'no scheme'}) is not mapped")
            return
        for option in options:  # balancer settings may be given on ProxyPass itself
            key = option.partition("=")[0].lower()
            if key in ("stickysession", "nofailover", "lbmethod", "timeout", "maxattempts"):
                self.balancers[pool].settings[key] = option.partition("=")[2]
            else:
                self.warn(d.where, f"ProxyPass option {option!r} is not mapped")
        target_path = url.path or "/"
        vhost.mappings.append(Mapping(path, pool, target_path, d.line))
        if target_path.rstrip("/") != path.rstrip("/"):
            self.warn(d.where, f"ProxyPass {path} -> {target}: fulcrum forwards the path unchanged "
                               f"(Apache would replace {path!r} by {target_path!r})")

    def read_proxy_block(self, d: Directive) -> None:
        url = urlsplit(d.args[0]) if d.args else None
        if url is None or url.scheme != "balancer":
            self.warn(d.where, f"<Proxy {' '.join(d.args)}> is not a balancer: not mapped")
            return
        name = url.hostname or "balancer"
        self.balancers.setdefault(name, Balancer(name))
        for child in d.children:
            if child.name == "balancermember":
                self.read_member(child, f"balancer://{name}")
            elif child.name == "proxyset":
                self.read_proxyset(child, name)
            else:
                self.warn(child.where, f"{name_of(child)} inside <Proxy> is not mapped")

    def read_member(self, d: Directive, balancer_url: str | None) -> None:
        args = list(d.args)
        if args and args[0].startswith("balancer://"):
            balancer_url = args.pop(0)
        if balancer_url is None or not args:
            self.warn(d.where, "BalancerMember outside a balancer: not mapped")
            return
        name = urlsplit(balancer_url).hostname or "balancer"
        balancer = self.balancers.setdefault(name, Balancer(name))
        url = urlsplit(args[0])
        if url.scheme not in ("http", "https") or not url.hostname:
            self.warn(d.where, f"BalancerMember {args[0]}: only http:// members are mapped")
            return
        if url.scheme == "https":
            self.warn(d.where, f"{args[0]}: TLS to servers is not supported; plain HTTP is used")
        if url.path not in ("", "/"):
            self.warn(d.where, f"{args[0]}: the member's path {url.path!r} is not mapped")
        server: dict[str, Any] = {"address": url.hostname, "port": url.port or (443 if url.scheme == "https" else 80)}
        for option in args[1:]:
            key, _, value = option.partition("=")
            key = key.lower()
            if key == "route":
                server["route"] = value
            elif key == "loadfactor" and value.isdigit():
                server["weight"] = int(value)
            elif key == "lbset" and value.isdigit():
                server["lbset"] = int(value)
            elif key == "status":
                self.member_status(d, server, value)
            elif key == "retry":
                balancer.settings["retry"] = value
            elif key == "timeout":
                balancer.settings["timeout"] = value
            else:
                self.warn(d.where, f"BalancerMember option {option!r} is not mapped")
        balancer.servers.append(server)

    def member_status(self, d: Directive, server: dict[str, Any], value: str) -> None:
        """status=+H (hot standby), +D/+S/+E (disabled, stopped, in error), +N (drain);
        a leading '-' clears a flag, which for a new server is the default anyway."""
        for sign, flag in re.findall(r"([+-]?)([A-Za-z])", value):
            if sign == "-":
                continue
            flag = flag.upper()
            if flag == "H":
                server["backup"] = True
            elif flag in ("D", "S", "E"):
                server["state"] = "disabled"
            elif flag == "N":
                server["state"] = "drain"
            else:
                self.warn(d.where, f"BalancerMember status flag {flag!r} is not mapped")

    def read_proxyset(self, d: Directive, balancer: str | None) -> None:
        args = list(d.args)
        if args and "://" in args[0]:
            url = urlsplit(args.pop(0))
            balancer = url.hostname if url.scheme == "balancer" else None
        if balancer is None:
            self.warn(d.where, "ProxySet outside a balancer: not mapped")
            return
        settings = self.balancers.setdefault(balancer, Balancer(balancer)).settings
        for option in args:
            key, _, value = option.partition("=")
            key = key.lower()
            if key in ("lbmethod", "stickysession", "nofailover", "timeout", "maxattempts"):
                settings[key] = value
            else:
                self.warn(d.where, f"ProxySet option {option!r} is not mapped")

    # -- building the model ----------------------------------------------------------

    def pool(self, balancer: Balancer) -> dict[str, Any]:
        s = balancer.settings
        pool: dict[str, Any] = {"servers": balancer.servers}
        method = s.get("lbmethod", "byrequests").lower()
        if method not in LBMETHODS:
            self.warn(f"balancer {balancer.name}", f"lbmethod={method} is not available: byrequests used")
        pool["scheduler"] = LBMETHODS.get(method, "byrequests")
        if "stickysession" in s:
            pool["sticky"] = {"mode": "cookie", "cookie": s["stickysession"],
                              "nofailover": s.get("nofailover", "off").lower() == "on"}
        if "retry" in s:
            pool["blacklist"] = f"{float(s['retry']):g}s"
        if "timeout" in s:
            self.warn(f"balancer {balancer.name}", "timeout (waiting for a free worker) is not mapped")
        if "maxattempts" in s:
            self.warn(f"balancer {balancer.name}", "maxattempts is not mapped: fulcrum retries as issue rules say")
        return pool

    def build(self) -> dict[str, Any]:
        pools: dict[str, Any] = {}
        for name, balancer in self.balancers.items():
            if not balancer.servers:
                self.warn(f"balancer {name}", "has no BalancerMember: left out")
                continue
            pools[name] = self.pool(balancer)
        by_listen: dict[tuple[str, ...], list[VirtualHost]] = {}
        for vhost in self.vhosts:
            if not vhost.mappings:
                self.warn(f"line {vhost.line}", "<VirtualHost> without ProxyPass: nothing to balance, left out")
                continue
            by_listen.setdefault(tuple(vhost.listen), []).append(vhost)
        services: dict[str, Any] = {}
        for listen, vhosts in by_listen.items():
            service = self.service(list(listen), vhosts, pools)
            if service is not None:
                port = listen[0].rsplit(":", 1)[1]
                services[f"http_{port}" if f"http_{port}" not in services else f"http_{len(services)}"] = service
        data: dict[str, Any] = {"services": services, "pools": pools}
        return data

    def service(self, listen: list[str], vhosts: list[VirtualHost], pools: dict[str, Any]) -> dict[str, Any] | None:
        several = len(vhosts) > 1
        routes: list[dict[str, Any]] = []
        default: str | None = None
        for vhost in vhosts:
            for m in vhost.mappings:
                if m.pool not in pools:
                    continue
                if m.path == "/" and default is None:
                    default = m.pool  # the first virtual host is Apache's default too
                hosts = vhost.names if several and vhost.names else [None]
                for host in hosts:
                    if host is None and m.path == "/":
                        continue
                    routes.append({"path": m.path, "pool": m.pool, **({"host": host} if host else {})})
        if default is None:
            first = next((m.pool for v in vhosts for m in v.mappings if m.pool in pools), None)
            if first is None:
                return None
            default = first
            self.warn(f"line {vhosts[0].line}", f"no ProxyPass for '/': other paths go to pool {first!r} "
                                                 "(Apache would serve them itself)")
        if any(v.preserve_host != vhosts[0].preserve_host for v in vhosts):
            self.warn(f"line {vhosts[0].line}", "ProxyPreserveHost differs between virtual hosts on one address: the first is used")
        http: dict[str, Any] = {"preserve_host": vhosts[0].preserve_host,
                                "rewrite_location": any(v.reverse for v in vhosts)}
        if routes:
            http["routes"] = routes
        tls_hosts = [v for v in vhosts if v.tls]
        if tls_hosts:
            certs = [{"cert": v.cert, "key": v.key or v.cert} for v in tls_hosts if v.cert]
            if certs:
                http["tls"] = {"certificates": certs}
            else:
                self.warn(f"line {tls_hosts[0].line}", "SSLEngine on without SSLCertificateFile: TLS not mapped")
        timeout = self.global_timeout
        if timeout:
            http["response_timeout"] = f"{timeout:g}s"
        return {"listen": listen, "mode": "http", "pool": default, "http": http}


def name_of(d: Directive) -> str:
    return d.name if not d.args else f"{d.name} {' '.join(d.args)}"


def convert(text: str) -> tuple[dict[str, Any], list[str]]:
    """Apache configuration text -> (fulcrum configuration as a dict, warnings).
    The dict is validated by the one model before it is returned."""
    importer = ApacheImport()
    importer.read(parse(text))
    data = importer.build()
    if not data["services"]:
        raise ValueError("no <VirtualHost> with ProxyPass to a balancer or server: nothing to import")
    load_dict(data)  # the one model decides validity; raises ConfigError with key paths
    return data, importer.warnings


def convert_file(path: str | Path) -> tuple[dict[str, Any], list[str]]:
    return convert(Path(path).read_text())

