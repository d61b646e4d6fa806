"""The one configuration model. Every front end (TOML, pen argv, importers, API,
web UI) produces a `Config`; nothing else decides what is valid."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    field_validator,
    model_serializer,
    model_validator,
)

from fulcrum.config.admin import Admin
from fulcrum.config.cluster import Cluster
from fulcrum.config.kernel import IPText, KernelSettings
from fulcrum.config.schedulers import known_schedulers
from fulcrum.config.serverspec import parse_server_spec
from fulcrum.config.strict import Strict
from fulcrum.config.sync import SyncSettings
from fulcrum.config.types import Duration, Host, Port, join_host_port, split_host_port


def _absolute_path(path: str) -> str:
    if not path.startswith("/"):
        raise ValueError("must start with '/'")
    return path


UrlPath = Annotated[str, AfterValidator(_absolute_path)]  # an HTTP path: starts with '/'


class Endpoint(Strict):
    """A listen address: `0.0.0.0:80`, `[::]:80`, `[2001:db8::1]:80`, or `:80`."""

    host: Host
    port: Port

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return {"host": "0.0.0.0", "port": value}
        if isinstance(value, str):
            text = value if not value.startswith(":") else "0.0.0.0" + value
            host, port = split_host_port(text, default_host="0.0.0.0")
            return {"host": host, "port": port}
        return value

    def __str__(self) -> str:
        return join_host_port(self.host, self.port)

    @model_serializer
    def _as_text(self) -> str:
        return str(self)


class Server(Strict):
    """One real server of a pool."""

    address: Host
    port: Port
    weight: int = Field(1, ge=0, le=65535, description="0 = quiesced: no new connections")
    max_connections: int = Field(0, ge=0, description="soft limit for new clients; 0 = none")
    hard_limit: int = Field(0, ge=0, description="limit even for sticky clients; 0 = none")
    priority: int = Field(0, ge=0, description="pen prio: lower is preferred by the prio scheduler")
    backup: bool = Field(False, description="used only when no primary server is usable")
    lbset: int = Field(0, ge=0, le=99, description="tier: a higher set is used only when lower sets have no usable server")
    state: Literal["enabled", "drain", "disabled"] = "enabled"
    route: str | None = Field(None, description="route id for sticky sessions")

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_server_spec(value)
        return value

    @property
    def key(self) -> str:
        return join_host_port(self.address, self.port)

    @model_validator(mode="after")
    def _limits(self) -> Server:
        if self.hard_limit and self.max_connections and self.hard_limit < self.max_connections:
            raise ValueError("hard_limit must be >= max_connections")
        return self


class HealthCheck(Strict):
    """Active probe settings; rise/fall semantics as in HAProxy and keepalived."""

    kind: Literal["none", "tcp", "http", "https", "tls", "script"] = "tcp"
    interval: Duration = 2.0
    timeout: Duration = 1.0
    rise: int = Field(2, ge=1, le=100)
    fall: int = Field(3, ge=1, le=100)
    port: Port | None = Field(None, description="probe this port instead of the server's")
    # http / https
    method: Literal["GET", "HEAD", "OPTIONS"] = "GET"
    path: UrlPath = "/"
    host: str | None = None
    expect_status: list[int] = Field(default_factory=list, description="empty = any 2xx or 3xx")
    expect_body: str | None = Field(None, description="regular expression the body must match")
    verify_tls: bool = False
    # script (keepalived MISC_CHECK, nanny send_program): exit 0 = up
    command: str | None = None
    # failed connects from real traffic count as failures
    passive: bool = True

    @field_validator("expect_status")
    @classmethod
    def _statuses(cls, statuses: list[int]) -> list[int]:
        for status in statuses:
            if not 100 <= status <= 599:
                raise ValueError(f"{status} is not an HTTP status")
        return statuses

    @model_validator(mode="after")
    def _consistent(self) -> HealthCheck:
        if self.kind == "script" and not self.command:
            raise ValueError("kind 'script' needs 'command'")
        if self.kind != "none" and self.timeout > self.interval:
            raise ValueError("timeout must not be longer than interval")
        return self


class Sticky(Strict):
    """How a client keeps going to the same server.

    `source`: pen's client table (remember the last server per client address).
    `cookie`: mod_proxy_balancer stickysession (route from a cookie/path parameter).
    `insert`: fulcrum sets its own signed cookie."""

    mode: Literal["none", "source", "cookie", "insert"] = "none"
    table_size: int = Field(2048, ge=1, description="pen -c: clients remembered")
    expiry: Duration = Field(0.0, description="pen -T: forget a client after this long; 0 = never")
    cookie: str = Field("ROUTEID", description="cookie mode: stickysession names, e.g. 'JSESSIONID|jsessionid'")
    nofailover: bool = False
    secret: str | None = Field(None, description="insert mode: HMAC key of the cookie; None = derived from the pool (set one: the same on every node)")
    max_age: Duration = Field(0.0, description="insert mode: cookie Max-Age; 0 = session cookie")
    samesite: Literal["Lax", "Strict", "None"] = "Lax"


class Pool(Strict):
    scheduler: str = "rr"
    proxy_protocol: Literal["none", "v1", "v2"] = Field("none", description="http: PROXY protocol header sent to servers")
    tls: bool = Field(False, description="http: speak TLS to the servers")
    tls_verify: bool = Field(True, description="http: verify the servers' certificates (tls_ca, else the system store)")
    tls_ca: str | None = Field(None, description="http: PEM file of the CA(s) that sign the servers' certificates")
    tls_server_name: str | None = Field(None, description="http: name expected in the servers' certificates; None = their address")
    servers: list[Server] = Field(min_length=1)
    health: HealthCheck = Field(default_factory=HealthCheck)
    sticky: Sticky = Field(default_factory=Sticky)
    stubborn: bool = Field(False, description="pen -s: never fail over to another server")
    # On the pool, as HAProxy's `retries` is on its backend: the bound is about the pool's
    # servers (how many of them one request or connection may try), and a service's routes
    # may lead to pools of very different sizes.
    retries: int = Field(3, ge=0, le=100, description="servers tried after the first for one connection or request "
                         "(failed connects, and the one resend of an idempotent HTTP request); then 503 / close")
    blacklist: Duration = Field(30.0, description="pen -b: skip a server this long after a failed connect")
    emergency: Server | None = Field(None, description="pen -e: used when every server is down")
    options: dict[str, int | float | str | bool] = Field(
        default_factory=dict, description="scheduler options, e.g. table_size for mh")

    @field_validator("scheduler")
    @classmethod
    def _known_scheduler(cls, name: str) -> str:
        if name not in known_schedulers():
            raise ValueError(f"unknown scheduler {name!r}; known: {', '.join(sorted(known_schedulers()))}")
        return name

    @model_validator(mode="after")
    def _unique_servers(self) -> Pool:
        seen: set[str] = set()
        for server in self.servers:
            if server.key in seen:
                raise ValueError(f"server {server.key} is listed twice")
            seen.add(server.key)
        return self


class Timeouts(Strict):
    connect: Duration = Field(3.0, description="pen -t")
    idle: Duration = Field(600.0, description="close a relay idle this long; 0 = never")
    drain: Duration = Field(10.0, description="on SIGTERM, wait this long for connections to finish")


class Route(Strict):
    """HTTP: requests whose Host and path match go to `pool` (ProxyPass /app balancer://app).
    The most specific route wins: a matching host before any host, then the longest prefix."""

    host: str | None = Field(None, description="Host header to match (no port, case-insensitive); None = any")
    path: UrlPath = Field("/", description="path prefix, on segment boundaries")
    pool: str


class Certificate(Strict):
    """A PEM certificate chain and its key; the first certificate of a listener is the default
    when a client sends no (or an unknown) server name."""

    cert: str
    key: str
    names: list[str] = Field(default_factory=list, description="SNI names; empty = the certificate's own DNS names")


class Tls(Strict):
    """TLS offload on every listen address of an http service (TLS 1.2 and 1.3 only).
    Certificates are read again on every reload (SIGHUP)."""

    certificates: list[Certificate] = Field(min_length=1, description="chosen by SNI")
    ciphers: str | None = Field(None, description="TLS 1.2 cipher string; None = modern AEAD suites")


class Http(Strict):
    """Options of a `mode = "http"` service; defaults are the strict, safe ones."""

    routes: list[Route] = Field(default_factory=list, description="the service's `pool` is the default route")
    preserve_host: bool = Field(True, description="ProxyPreserveHost: keep the client's Host; off = the server's address")
    x_forwarded: bool = Field(True, description="add X-Forwarded-For (appended), -Proto and -Host")
    forwarded: bool = Field(False, description="also add an RFC 7239 Forwarded header")
    rewrite_location: bool = Field(True, description="ProxyPassReverse: rewrite Location, Content-Location and URI")
    accept_proxy_protocol: list[str] = Field(default_factory=list, description="networks allowed to send a PROXY protocol header")
    max_request_line: int = Field(8190, ge=64, description="longer: 414")
    max_header_bytes: int = Field(65536, ge=256, description="all header fields together; more: 431")
    max_headers: int = Field(100, ge=1, description="header fields per request; more: 431")
    header_timeout: Duration = Field(10.0, description="whole request head must arrive within this (408; slowloris)")
    body_timeout: Duration = Field(30.0, description="request body idle this long: 408")
    keepalive_timeout: Duration = Field(60.0, description="idle client keep-alive connection closed after this")
    response_timeout: Duration = Field(60.0, description="server silent this long after the request: 504")
    retry_after: int = Field(5, ge=0, description="Retry-After of 503 answers, in seconds")
    tls: Tls | None = None
    redirect_https: bool = Field(False, description="answer every request with 308 to the same URL on https")

    @field_validator("accept_proxy_protocol")
    @classmethod
    def _networks(cls, networks: list[str]) -> list[str]:
        import ipaddress

        for net in networks:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError as err:
                raise ValueError(f"{net!r} is not an address or network") from err
        return networks


AccessTarget = Annotated[str, AfterValidator(lambda v: _access_target(v))]


def _access_target(value: str) -> str:
    if value in ("off", "syslog") or value.startswith("/"):
        return value
    raise ValueError(f"{value!r}: give an absolute file path, 'syslog' or 'off'")


class ServiceLog(Strict):
    """A service's own access log settings; unset ones come from [log]."""

    access: AccessTarget | None = Field(None, description="file path, 'syslog' or 'off'; None = [log] access")
    access_format: Literal["text", "combined", "json"] | None = Field(None, description="None = [log] access_format")
    access_sample: float | None = Field(None, gt=0, le=1, description="fraction of requests logged; None = [log] access_sample")


class Service(Strict):
    listen: list[Endpoint] = Field(min_length=1)
    pool: str
    mode: Literal["tcp", "http"] = "tcp"
    topology: Literal["proxy", "nat", "fullnat", "dsr"] = "proxy"
    forwarded_for: bool = Field(False, description="pen -H: add X-Forwarded-For/-Proto to HTTP passing through a tcp service")
    backlog: int = Field(511, ge=1, description="pen -q")
    max_connections: int = Field(0, ge=0, description="0 = only the global limit")
    timeouts: Timeouts | None = None
    http: Http = Field(default_factory=Http, description="only used when mode = 'http'")
    log: ServiceLog | None = Field(None, description="this service's access log, if not as in [log]")
    # kernel topologies (nat, fullnat, dsr): fulcrum/config/kernel.py checks these
    protocol: Literal["tcp", "udp"] = Field("tcp", description="udp only with a kernel topology (pen -U, IPVS -u)")
    persistence: Duration = Field(0.0, description="kernel topologies: a client keeps its server until it has opened no new connection for this long (IPVS -p); 0 = off")
    snat: list[IPText] = Field(default_factory=list, description="fullnat: source addresses towards the servers; empty = the balancer's own address on that side")


class Control(Strict):
    pen_port: Endpoint | None = Field(None, description="pen -C: pen-compatible control port. Unauthenticated (as pen's): "
                                      "refused when fulcrum runs as root without `user`; 127.0.0.1 unless an address is given")
    pen_dir: str | None = Field(None, description="the only directory pen's control port may write files into (`write`, "
                                "`web_stats`); None = it writes none. `fulcrum pen` without it: the -F file's directory")
    status_file: str | None = Field(None, description="pen -w: HTML status page written on SIGUSR1")
    pidfile: str | None = None
    socket: str | None = Field(None, description="Unix socket (mode 0600) where `fulcrum ctl` reaches the command table; "
                               "None = /run/fulcrum/control.sock as root, $XDG_RUNTIME_DIR/fulcrum/control.sock otherwise; 'off' = none")

    @field_validator("pen_port", mode="before")
    @classmethod
    def _loopback_unless_given(cls, value: Any) -> Any:
        # unauthenticated: a bare port (8888, ":8888", "8888") means 127.0.0.1, never every address
        if isinstance(value, int) and not isinstance(value, bool):
            return f"127.0.0.1:{value}"
        if isinstance(value, str) and (value.strip().isdigit() or value.strip().startswith(":") and value.count(":") == 1):
            return "127.0.0.1:" + value.strip().lstrip(":")
        return value


class Logging(Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"
    file: str | None = Field(None, description="daemon log file (reopened on SIGHUP); None = standard error")
    access: AccessTarget = Field("off", description="access log: a file path (reopened on SIGHUP), 'syslog' or 'off'")
    access_format: Literal["text", "combined", "json"] = Field(
        "text", description="text (HAProxy httplog/tcplog style), combined (Apache) or json")
    access_sample: float = Field(1.0, gt=0, le=1, description="fraction of requests/connections logged (busy services)")
    syslog_socket: str = Field("/dev/log", description="Unix datagram socket of the syslog daemon")
    syslog_facility: Literal["daemon", "local0", "local1", "local2", "local3", "local4", "local5",
                             "local6", "local7", "user"] = Field("local0", description="syslog facility of access lines")


class Config(Strict):
    services: dict[str, Service] = Field(default_factory=dict, description="at least one, unless the node only holds VIPs (cluster)")
    pools: dict[str, Pool] = Field(default_factory=dict)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    max_connections: int = Field(10000, ge=0, description="pen -x: global connection limit; 0 = none")
    workers: int = Field(1, ge=1, le=64)
    log: Logging = Field(default_factory=Logging)
    control: Control = Field(default_factory=Control)
    cluster: Cluster | None = Field(None, description="VRRP virtual routers; without it the node runs alone")
    sync: SyncSettings | None = Field(None, description="share configuration changes with the other nodes")
    kernel: KernelSettings = Field(default_factory=KernelSettings, description="nftables tables of the kernel topologies")
    user: str | None = Field(None, description="pen -u: after binding the listen addresses, run as this user "
                             "(and its primary group, no other groups)")
    admin: Admin | None = Field(None, description="web UI, REST API and /metrics (off without this section)")

    @model_validator(mode="after")
    def _something_to_run(self) -> Config:
        # A node with only virtual routers is what a VRRP-only keepalived.conf (VIPs in
        # front of another proxy) imports to; without a cluster a node must serve something.
        if not self.services and self.cluster is None:
            raise ValueError("services: at least one service is needed (or a cluster section)")
        if self.user is not None and self.cluster is not None:
            raise ValueError("user: VRRP and virtual IPs need root's CAP_NET_RAW and CAP_NET_ADMIN, which a node "
                             "running as another user does not keep; leave `user` unset on cluster nodes")
        if self.user is not None and any(s.topology != "proxy" for s in self.services.values()):
            raise ValueError("user: kernel topologies (nat, fullnat, dsr) need root's CAP_NET_ADMIN for nftables; "
                             "leave `user` unset")
        return self

    @field_validator("user")
    @classmethod
    def _user_name(cls, name: str | None) -> str | None:
        if name is not None and not name.strip():
            raise ValueError("must name a user")
        return name

    def service_timeouts(self, name: str) -> Timeouts:
        return self.services[name].timeouts or self.timeouts
