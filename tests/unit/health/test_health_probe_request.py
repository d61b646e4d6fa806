"""The pure parts of the probes: the HTTP request they send and how a response is judged."""

from __future__ import annotations

import pytest

from fulcrum.config.model import HealthCheck
from fulcrum.health.probes import http_request, judge_response, script_command


def host_line(check: HealthCheck, address: str, port: int, tls: bool = False) -> str:
    lines = http_request(check, address, port, tls).decode().split("\r\n")
    return next(line for line in lines if line.startswith("Host: "))


@pytest.mark.parametrize("address,port,tls,expected", [
    ("10.0.0.1", 8080, False, "Host: 10.0.0.1:8080"),
    ("10.0.0.1", 80, False, "Host: 10.0.0.1"),
    ("10.0.0.1", 443, True, "Host: 10.0.0.1"),
    ("10.0.0.1", 80, True, "Host: 10.0.0.1:80"),
    ("2001:db8::1", 80, False, "Host: [2001:db8::1]"),
    ("2001:db8::1", 8443, True, "Host: [2001:db8::1]:8443"),
])
def test_host_header_is_the_authority_without_the_default_port(address, port, tls, expected):
    assert host_line(HealthCheck(kind="http"), address, port, tls) == expected


def test_configured_host_wins_and_the_request_closes():
    request = http_request(HealthCheck(kind="http", host="www.example", method="OPTIONS", path="/x"),
                           "10.0.0.1", 8080, False)
    assert request.startswith(b"OPTIONS /x HTTP/1.1\r\nHost: www.example\r\n")
    assert b"\r\nConnection: close\r\n" in request
    assert request.endswith(b"\r\n\r\n")


@pytest.mark.parametrize("status,expect,ok", [
    (200, [], True), (204, [], True), (301, [], True), (399, [], True),
    (199, [], False), (400, [], False), (500, [], False),
    (500, [500, 503], True), (200, [500, 503], False),
])
def test_status_judgement(status, expect, ok):
    assert judge_response(HealthCheck(kind="http", expect_status=expect), status, b"")[0] is ok


def test_body_is_searched_not_matched_from_the_start():
    check = HealthCheck(kind="http", expect_body="ready")
    assert judge_response(check, 200, b"status=ready\n") == (True, "HTTP 200")
    assert judge_response(check, 200, b"starting") == (
        False, "HTTP 200, body does not match 'ready'")


def test_nanny_token_is_replaced_by_the_address():
    assert script_command("/usr/local/bin/check %h --port 80", "10.0.0.7") == (
        "/usr/local/bin/check 10.0.0.7 --port 80")
