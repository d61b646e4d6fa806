"""The observer: totals per service and server, sinks, wall clock."""

from __future__ import annotations

from fulcrum.observe import CLIENT_ABORT, Observation, Observer


def test_http_records_count_requests_statuses_and_bytes_per_service_and_server() -> None:
    observer = Observer()
    for status in (200, 204, 404, 503, 101):
        observer.record(Observation(kind="http", service="web", pool="p", server="10.0.0.1:80",
                                    status=status, bytes_in=10, bytes_out=100))
    observer.record(Observation(kind="http", service="web", status=0, termination=CLIENT_ABORT))
    web = observer.service_totals("web").as_dict()
    assert web["requests"] == 6
    assert web["statuses"] == {"1xx": 1, "2xx": 2, "3xx": 0, "4xx": 1, "5xx": 1, "other": 1}
    assert web["bytes_in"] == 50 and web["bytes_out"] == 500
    assert web["errors"] == 1 and web["terminations"] == {CLIENT_ABORT: 1}
    server = observer.server_totals("p", "10.0.0.1:80").as_dict()
    assert server["requests"] == 5 and server["errors"] == 0  # the aborted one reached no server
    assert observer.server_totals("p", "10.0.0.2:80").requests == 0



def test_a_tally_without_a_record_counts_what_the_record_would() -> None:
    """With no sink the proxy counts straight into the totals (no Observation is built):
    the figures are the same as through a record."""
    recorded, tallied = Observer(), Observer()
    cases = [(200, "p", "s:1", ""), (503, "p", None, CLIENT_ABORT), (0, None, None, CLIENT_ABORT), (101, "p", "s:1", "")]
    for status, pool, server, termination in cases:
        recorded.record(Observation(kind="http", service="web", pool=pool, server=server, status=status,
                                    bytes_in=7, bytes_out=9, termination=termination))
        tallied.tally("web", pool, server, True, status, 7, 9, termination)
    tallied.tally("db", "p", "s:1", False, 0, 3, 4, "")
    recorded.record(Observation(kind="tcp", service="db", pool="p", server="s:1", bytes_in=3, bytes_out=4))
    for name in ("web", "db"):
        assert tallied.service_totals(name).as_dict() == recorded.service_totals(name).as_dict()
    assert tallied.server_totals("p", "s:1").as_dict() == recorded.server_totals("p", "s:1").as_dict()

def test_tcp_records_count_connections_not_requests() -> None:
    observer = Observer()
    observer.record(Observation(kind="tcp", service="db", pool="p", server="s:1", bytes_in=3))
    totals = observer.service_totals("db")
    assert (totals.connections, totals.requests, totals.bytes_in) == (1, 0, 3)


def test_sinks_get_every_record_with_its_wall_clock_start() -> None:
    seen: list[Observation] = []
    observer = Observer(wall_clock=lambda: 1000.0)
    assert not observer.wants_client
    observer.sinks.append(seen.append)
    assert observer.wants_client
    observer.record(Observation(kind="tcp", service="db", total=2.5))
    observer.record(Observation(kind="tcp", service="db", total=1.0, started=42.0))
    assert [o.started for o in seen] == [997.5, 42.0]
