"""/metrics: Prometheus text from the node's live state, with credentials unless
admin.metrics_public."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.integration.admin_lab import AdminLab, wait_for


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_follow_traffic_health_and_weights(tmp_path: Path) -> None:
    lab = AdminLab(tmp_path).start()
    try:
        for _ in range(6):
            lab.through_proxy()
        lab.backends[1].stop()
        assert lab.api().post("/api/v1/commands/server.weight", json_body={"args": ["0", 3]}).status == 200

        def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            answer = lab.api().get("/metrics")
            assert answer.status == 200 and answer.headers["Content-Type"].startswith("text/plain")
            return samples(answer.text)

        s0 = (("pool", "web"), ("server", f"127.0.0.1:{lab.backends[0].port}"))
        s1 = (("pool", "web"), ("server", f"127.0.0.1:{lab.backends[1].port}"))
        got = wait_for(lambda: (m := scrape())[("fulcrum_server_up", s1)] == 0 and m)
        assert got[("fulcrum_server_up", s0)] == 1
        assert got[("fulcrum_server_state", (*s1[:1], ("server", s1[1][1]), ("state", "down")))] == 1
        assert got[("fulcrum_server_weight", s0)] == 3
        assert got[("fulcrum_service_connections_total", (("service", "web"),))] == 6
        assert got[("fulcrum_server_connections_total", s0)] + got[("fulcrum_server_connections_total", s1)] == 6
        assert got[("fulcrum_service_sent_bytes_total", (("service", "web"),))] > 0
        assert got[("fulcrum_server_check_success", s1)] == 0
        assert ("fulcrum_server_check_duration_seconds", s0) in got
        assert got[("fulcrum_config_version", ())] == 2
        assert got[("fulcrum_admin_config_changes_total", (("result", "applied"),))] == 1
        assert got[("fulcrum_process_resident_memory_bytes", ())] > 0
        assert got[("fulcrum_build_info", (("node", got_node(got)), ("version", "0.1.0")))] == 1
        assert lab.client().get("/metrics").status == 401
    finally:
        lab.stop()


def got_node(got: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> str:
    return next(dict(labels)["node"] for name, labels in got if name == "fulcrum_build_info")


def test_metrics_public_answers_without_credentials_but_nothing_else_does(tmp_path: Path) -> None:
    lab = AdminLab(tmp_path)
    config = lab.config()
    lab.start(admin={**config["admin"], "metrics_public": True})
    try:
        assert lab.client().get("/metrics").status == 200
        assert lab.client().get("/api/v1/status").status == 401
    finally:
        lab.stop()


def test_reloads_of_the_file_are_counted_by_result(tmp_path: Path) -> None:
    import os
    import signal

    lab = AdminLab(tmp_path).start()
    try:
        good = lab.path.read_text()
        lab.path.write_text(good + "\nmax_connections = -1\n")
        assert lab.process is not None
        os.kill(lab.process.pid, signal.SIGHUP)
        key = ("fulcrum_config_reloads_total", (("result", "rejected"),))
        wait_for(lambda: samples(lab.api().get("/metrics").text).get(key) == 1)
        lab.path.write_text(good)
        os.kill(lab.process.pid, signal.SIGHUP)
        applied = ("fulcrum_config_reloads_total", (("result", "applied"),))
        got = wait_for(lambda: (m := samples(lab.api().get("/metrics").text)).get(applied) == 1 and m)
        assert got[key] == 1
        assert lab.api().get("/api/v1/status").json()["reloads"] == {"applied": 1, "rejected": 1}
    finally:
        lab.stop()


def test_with_two_workers_status_and_metrics_count_the_whole_node(tmp_path: Path) -> None:
    lab = AdminLab(tmp_path).start(workers=2)
    try:
        for _ in range(20):
            lab.through_proxy()  # SO_REUSEPORT spreads these over both workers
        status = wait_for(lambda: (s := lab.api().get("/api/v1/status").json())["services"]["web"]["connections"] == 20
                          and s, timeout=15)
        assert status["workers"] == 2
        assert sum(s["connections"] for s in status["pools"]["web"]["servers"]) == 20
        got = samples(lab.api().get("/metrics").text)
        assert got[("fulcrum_service_connections_total", (("service", "web"),))] == 20
    finally:
        lab.stop()
