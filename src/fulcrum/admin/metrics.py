"""Prometheus metrics at /metrics: a custom collector over one status of the node, read
at scrape time (nothing is tallied here: the numbers are the observer's totals and the
pools' live state, see control/status.py).

Names follow the Prometheus conventions: `fulcrum_` prefix, `_total` for counters,
seconds and bytes as base units, label values as the configuration names them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

SERVER_STATES = ("up", "down", "drain", "disabled", "blacklisted", "full", "quiesced")
ROUTER_STATES = ("initialize", "backup", "master")


class StatusCollector(Collector):
    def __init__(self, status: dict[str, Any]):
        self.status = status

    def collect(self) -> Iterator[Metric]:
        status = self.status
        info = InfoMetricFamily("fulcrum_build", "fulcrum version and node name")
        info.add_metric([], {"version": str(status["version"]), "node": str(status["node"])})
        yield info
        yield _gauge("fulcrum_start_time_seconds", "when the node started (Unix time)", [], [([], status["started"])])
        yield _gauge("fulcrum_config_version", "version of the running configuration (0: none kept)",
                     [], [([], status.get("config_version") or 0)])
        yield _counter("fulcrum_config_reloads", "re-reads of the configuration file (SIGHUP, fulcrum reload), by result",
                       ["result"], [([result], n) for result, n in sorted((status.get("reloads") or {}).items())])
        yield _gauge("fulcrum_connections", "connections open now (this process)", [], [([], status["connections"])])
        yield from _services(status["services"])
        yield from _servers(status["pools"])
        yield from _routers(status.get("routers") or {})


def _gauge(name: str, doc: str, labels: list[str], samples: list[tuple[list[str], float]]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for values, value in samples:
        family.add_metric(values, value)
    return family


def _counter(name: str, doc: str, labels: list[str], samples: list[tuple[list[str], float]]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for values, value in samples:
        family.add_metric(values, value)
    return family


def _traffic(prefix: str, what: str, labels: list[str], rows: list[tuple[list[str], dict[str, Any]]]) -> Iterator[Metric]:
    yield _counter(f"fulcrum_{prefix}_connections", f"tcp connections finished, per {what}", labels,
                   [(v, r["connections"]) for v, r in rows])
    yield _counter(f"fulcrum_{prefix}_requests", f"http requests finished, per {what}", labels,
                   [(v, r["requests"]) for v, r in rows])
    yield _counter(f"fulcrum_{prefix}_received_bytes", f"bytes received from clients, per {what}", labels,
                   [(v, r["bytes_in"]) for v, r in rows])
    yield _counter(f"fulcrum_{prefix}_sent_bytes", f"bytes sent to clients, per {what}", labels,
                   [(v, r["bytes_out"]) for v, r in rows])
    yield _counter(f"fulcrum_{prefix}_responses", f"http responses by status class, per {what}", [*labels, "code"],
                   [([*v, code], n) for v, r in rows for code, n in r["statuses"].items()])
    yield _counter(f"fulcrum_{prefix}_errors", f"requests and connections that ended abnormally, per {what}",
                   [*labels, "reason"], [([*v, reason], n) for v, r in rows for reason, n in r["terminations"].items()])


def _services(services: dict[str, Any]) -> Iterator[Metric]:
    rows = [([name], s) for name, s in services.items()]
    yield _gauge("fulcrum_service_connections", "connections open now, per service", ["service"],
                 [(v, s["active"]) for v, s in rows])
    yield from _traffic("service", "service", ["service"], rows)


def _servers(pools: dict[str, Any]) -> Iterator[Metric]:
    rows = [([pool, s["key"]], s) for pool, p in pools.items() for s in p["servers"]]
    labels = ["pool", "server"]
    yield _gauge("fulcrum_server_up", "1 when the health check says the server is up", labels,
                 [(v, 1 if s["health"] == "up" else 0) for v, s in rows])
    yield _gauge("fulcrum_server_state", "the server's state (one series per state, 1 = current)",
                 [*labels, "state"], [([*v, state], 1 if s["status"] == state else 0)
                                      for v, s in rows for state in SERVER_STATES])
    yield _gauge("fulcrum_server_weight", "the server's weight", labels, [(v, s["weight"]) for v, s in rows])
    yield _gauge("fulcrum_server_connections", "connections open now, per server", labels,
                 [(v, s["active"]) for v, s in rows])
    yield _counter("fulcrum_server_connect_failures", "failed connects to the server", labels,
                   [(v, s["failures"]) for v, s in rows])
    checked = [(v, s["check"]) for v, s in rows if s.get("check")]
    yield _gauge("fulcrum_server_check_success", "1 when the last health check passed", labels,
                 [(v, 1 if c["ok"] else 0) for v, c in checked if c["ok"] is not None])
    yield _gauge("fulcrum_server_check_duration_seconds", "how long the last active health check took", labels,
                 [(v, c["duration"]) for v, c in checked if c["duration"] is not None])
    yield from _traffic("server", "server", labels, rows)


def _routers(routers: dict[str, Any]) -> Iterator[Metric]:
    rows = [([name], r) for name, r in routers.items()]
    yield _gauge("fulcrum_vrrp_state", "VRRP state of each virtual router (1 = current)", ["router", "state"],
                 [([*v, state], 1 if r["state"] == state else 0) for v, r in rows for state in ROUTER_STATES])
    yield _gauge("fulcrum_vrrp_priority", "effective priority of each virtual router", ["router"],
                 [(v, r["priority"]) for v, r in rows])
    yield _gauge("fulcrum_vrrp_peer_priority", "priority in the last advert heard from another router", ["router"],
                 [(v, r["peer"]["priority"]) for v, r in rows if r.get("peer")])
    yield _counter("fulcrum_vrrp_transitions", "VRRP state changes", ["router"],
                   [(v, r.get("transitions", 0)) for v, r in rows])


def render(status: dict[str, Any], reloads: dict[str, int], node_pid: int) -> bytes:
    """The exposition text of one scrape: the node's status, the reloads made through this
    admin plane, and the node process's CPU, memory and file descriptors."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(status))
    registry.register(ProcessCollector(namespace="fulcrum", pid=lambda: node_pid, registry=None))
    registry.register(_Reloads(reloads))
    return generate_latest(registry)


class _Reloads(Collector):
    def __init__(self, reloads: dict[str, int]):
        self.reloads = reloads

    def collect(self) -> Iterator[Metric]:
        yield _counter("fulcrum_admin_config_changes", "configuration changes asked through the admin plane, by result",
                       ["result"], [([result], n) for result, n in sorted(self.reloads.items())])
