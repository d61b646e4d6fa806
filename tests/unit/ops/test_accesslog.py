"""Access log formats, sampling, outputs (file reopen; syslog and sd_notify to a socket are in
tests/integration/test_log_sockets.py), the warning throttle."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from fulcrum.accesslog import (
    FileOutput,
    Sampler,
    format_combined,
    format_json,
    format_text,
    open_access_logs,
)
from fulcrum.config.load import load_dict
from fulcrum.logs import Throttle
from fulcrum.observe import CONNECT_FAILED, Observation, Observer

WHEN = 1_780_000_000.25  # a fixed wall-clock time


def http(**extra: object) -> Observation:
    fields: dict[str, object] = dict(
        kind="http", service="web", client="192.0.2.7", client_port=51234, pool="app",
        server="10.0.0.11:8080", route="/app", method="GET", target="/app/x?q=1", version="1.1",
        status=200, bytes_in=310, bytes_out=1024, wait_request=0.002, connect=0.0015,
        wait_response=0.012, total=0.016, started=WHEN, user_agent='curl/8 "x"', referer=None)
    fields.update(extra)
    return Observation(**fields)  # type: ignore[arg-type]


def test_text_http_and_tcp_lines() -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(WHEN)) + ".250Z"
    assert format_text(http()) == (
        f'{stamp} 192.0.2.7:51234 web app/10.0.0.11:8080 2/2/12/16 200 310 1024 - 0 /app "GET /app/x?q=1 HTTP/1.1"')
    tcp = Observation(kind="tcp", service="db", client="2001:db8::7", client_port=40000, pool="db",
                      server="10.0.0.5:5432", bytes_in=10, bytes_out=20, connect=None, total=3.5,
                      termination=CONNECT_FAILED, started=WHEN)
    assert format_text(tcp) == f"{stamp} [2001:db8::7]:40000 db db/10.0.0.5:5432 -1/3500 10 20 connect_failed"


def test_combined_is_apaches_format() -> None:
    line = format_combined(http())
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(WHEN))
    assert line == f'192.0.2.7 - - [{stamp}] "GET /app/x?q=1 HTTP/1.1" 200 1024 "-" "curl/8 \\"x\\""'
    # a client's control bytes cannot forge a second line or colour a terminal (Apache escapes them)
    hostile = format_combined(http(target="/a\nb\x1b[31m", user_agent="back\\slash é"))
    assert '"GET /a\\x0ab\\x1b[31m HTTP/1.1"' in hostile and '"back\\\\slash é"' in hostile
    assert "\n" not in hostile


def test_json_has_real_fields() -> None:
    entry = json.loads(format_json(http(retries=1)))
    assert entry["client"] == "192.0.2.7" and entry["status"] == 200 and entry["retries"] == 1
    assert entry["wait_response"] == 0.012 and entry["time"].endswith(".250Z")
    assert "referer" not in entry  # None is left out, not "null"


def test_sampling_keeps_one_in_n_and_every_failure() -> None:
    sampler = Sampler(0.25)
    kept = [sampler.keep(http()) for _ in range(100)]
    assert sum(kept) == 25
    assert all(sampler.keep(http(status=502)) for _ in range(10))
    assert all(sampler.keep(http(termination="timeout")) for _ in range(10))


def test_file_is_reopened_after_rotation(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    out = FileOutput(str(path))
    out.write("one")
    path.rename(tmp_path / "access.log.1")  # logrotate, no copytruncate
    out.write("two")  # still the old file until reopened
    out.reopen()
    out.write("three")
    out.close()
    assert (tmp_path / "access.log.1").read_text() == "one\ntwo\n"
    assert path.read_text() == "three\n"


def test_service_settings_override_the_log_section(tmp_path: Path) -> None:
    main, own = tmp_path / "all.log", tmp_path / "api.log"
    config = load_dict({
        "services": {"web": {"listen": ["127.0.0.1:1"], "pool": "p"},
                     "api": {"listen": ["127.0.0.1:2"], "pool": "p", "log": {"access": str(own), "access_format": "json"}},
                     "quiet": {"listen": ["127.0.0.1:3"], "pool": "p", "log": {"access": "off"}}},
        "pools": {"p": {"servers": ["127.0.0.1:9"]}},
        "log": {"access": str(main)}})
    logs = open_access_logs(config)
    observer = Observer(wall_clock=time.time)
    observer.sinks.append(logs)
    for service in ("web", "api", "quiet"):
        observer.record(http(service=service, started=0.0))
    logs.close()
    assert main.read_text().count("\n") == 1 and " web " in main.read_text()
    assert json.loads(own.read_text())["service"] == "api"


def test_throttle_counts_what_it_suppressed(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    throttle = Throttle(interval=10, clock=lambda: now[0])
    logger = logging.getLogger("fulcrum.test.throttle")
    with caplog.at_level(logging.WARNING, logger="fulcrum.test.throttle"):
        assert throttle.log(logger, logging.WARNING, "down", "server %s down", "a")
        for _ in range(5):
            assert not throttle.log(logger, logging.WARNING, "down", "server %s down", "a")
        assert throttle.log(logger, logging.WARNING, "other", "another kind")
        now[0] = 10.5
        assert throttle.log(logger, logging.WARNING, "down", "server %s down", "a")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["server a down", "another kind",
                     "server a down (5 similar message(s) suppressed in the last 10s)"]


def test_json_daemon_log_carries_the_status_as_an_object() -> None:
    from fulcrum.logs import JsonFormatter, TextFormatter

    record = logging.LogRecord("fulcrum.process", logging.INFO, __file__, 1, "status", (), None)
    record.fields = {"status": {"connections": 3, "pools": {"p": {"servers": []}}}}
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "status" and entry["status"]["connections"] == 3  # not JSON in a string
    text = TextFormatter("%(message)s").format(record)
    assert text.startswith("status status={") and json.loads(text.split("=", 1)[1])["connections"] == 3
