"""Observations: one record per finished HTTP request and per finished TCP connection.

Access logs, Prometheus metrics and the status table are views of these records (and of the
pools' live counters on each `Backend`: active connections, health, weight) — not three
separate tallies. The proxy builds one `Observation` when a request or a connection ends and
hands it to `Observer.record`, which

- adds it to running `Totals` per service and per (pool, server), read by the metrics
  exporter and the status table, and
- passes it to every sink (access logs: text, combined, JSON, syslog), if any is set.

Pure: no I/O here. Timings are durations in seconds measured by the caller on the loop's
monotonic clock; `Observation.started` is the wall-clock time the request or connection
began, filled in from the wall clock the node gives when a sink needs it.

With several worker processes each worker has its own `Observer`; node-wide figures are the
sum of the workers' `Totals` (see the workers module for how they are shared)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

# Termination reasons: "" is a normal end. Kept as short words so logs can be grepped and
# metrics labelled with them.
NORMAL = ""
CLIENT_ABORT = "client_abort"  # client closed or reset before the exchange finished
SERVER_ABORT = "server_abort"  # server closed or reset before the exchange finished
CONNECT_FAILED = "connect_failed"  # no server could be connected to
NO_SERVER = "no_server"  # the pool had no usable server
LIMIT = "limit"  # a connection limit refused the client
TIMEOUT = "timeout"  # an idle, header, body or response timeout fired
REJECTED = "rejected"  # the request was refused (malformed, too large, ...)
SHUTDOWN = "shutdown"  # cut by a stop after the drain time

STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "other")


@dataclass(slots=True)
class Observation:
    kind: str  # "http" (one request) or "tcp" (one connection)
    service: str
    client: str = "-"
    client_port: int = 0
    pool: str | None = None
    server: str | None = None  # host:port of the real server; None when none was reached
    route: str | None = None  # http: the route (host/path) that chose the pool
    method: str | None = None
    target: str | None = None  # http: the request target as sent by the client
    version: str | None = None  # http: "1.1", "1.0"
    status: int = 0  # http: the status sent to the client; 0 = none was sent
    bytes_in: int = 0  # bytes received from the client (head and body for http)
    bytes_out: int = 0  # bytes sent to the client
    wait_request: float | None = None  # http: from connection or previous response to the whole head
    connect: float | None = None  # time to connect to the server; None = reused connection or none
    wait_response: float | None = None  # from the request sent to the first response byte
    total: float = 0.0  # from the start to the end of the request or connection
    retries: int = 0  # extra servers tried
    termination: str = NORMAL
    started: float = 0.0  # wall clock (time.time()) at the start; filled by record() if 0
    user_agent: str | None = None  # http: for the combined log format
    referer: str | None = None


@dataclass(slots=True)
class Totals:
    """Running counts of finished requests/connections. Only ever grows."""

    requests: int = 0  # http requests finished
    connections: int = 0  # tcp connections finished
    bytes_in: int = 0
    bytes_out: int = 0
    statuses: list[int] = field(default_factory=lambda: [0] * len(STATUS_CLASSES))
    errors: int = 0  # finished with a termination reason
    terminations: dict[str, int] = field(default_factory=dict)

    def add(self, obs: Observation) -> None:
        self.count(obs.kind == "http", obs.status, obs.bytes_in, obs.bytes_out, obs.termination)

    def count(self, http: bool, status: int, bytes_in: int, bytes_out: int, termination: str) -> None:
        if http:
            self.requests += 1
            self.statuses[status // 100 - 1 if 100 <= status < 600 else 5] += 1
        else:
            self.connections += 1
        self.bytes_in += bytes_in
        self.bytes_out += bytes_out
        if termination:
            self.errors += 1
            self.terminations[termination] = self.terminations.get(termination, 0) + 1

    def as_dict(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "connections": self.connections,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "statuses": dict(zip(STATUS_CLASSES, self.statuses, strict=True)),
            "errors": self.errors,
            "terminations": dict(self.terminations),
        }


Sink = Callable[[Observation], None]


class Observer:
    """The one place observations go. One per process (the node owns it)."""

    def __init__(self, wall_clock: Callable[[], float] | None = None) -> None:
        self.wall_clock = wall_clock  # time.time from the node; None leaves `started` as given
        self.services: dict[str, Totals] = {}
        self.servers: dict[tuple[str, str], Totals] = {}  # (pool, server key)
        self.sinks: list[Sink] = []

    @property
    def wants_client(self) -> bool:
        """True when a sink prints client addresses: only then must the proxy read them."""
        return bool(self.sinks)

    def record(self, obs: Observation) -> None:
        totals = self.services.get(obs.service)
        if totals is None:
            totals = self.services[obs.service] = Totals()
        totals.add(obs)
        if obs.server is not None and obs.pool is not None:
            key = (obs.pool, obs.server)
            server_totals = self.servers.get(key)
            if server_totals is None:
                server_totals = self.servers[key] = Totals()
            server_totals.add(obs)
        if self.sinks:
            if not obs.started and self.wall_clock is not None:
                obs.started = self.wall_clock() - obs.total
            for sink in self.sinks:
                sink(obs)

    def tally(self, service: str, pool: str | None, server: str | None, http: bool, status: int,
              bytes_in: int, bytes_out: int, termination: str) -> None:
        """What `record` does with an Observation nobody else reads (no sink is set): the
        same Totals, without building the record (issue 10: per-request work nobody needs)."""
        totals = self.services.get(service)
        if totals is None:
            totals = self.services[service] = Totals()
        totals.count(http, status, bytes_in, bytes_out, termination)
        if server is not None and pool is not None:
            key = (pool, server)
            server_totals = self.servers.get(key)
            if server_totals is None:
                server_totals = self.servers[key] = Totals()
            server_totals.count(http, status, bytes_in, bytes_out, termination)

    def service_totals(self, name: str) -> Totals:
        return self.services.get(name) or Totals()

    def server_totals(self, pool: str, server: str) -> Totals:
        return self.servers.get((pool, server)) or Totals()
