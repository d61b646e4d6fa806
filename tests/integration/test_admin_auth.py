"""The admin listener's gate, over HTTP: nothing without credentials, a login form with a
session cookie and CSRF, Basic and bearer for scripts, failed logins limited and logged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.admin_lab import PASSWORD, USER, AdminLab


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminLab]:
    lab = AdminLab(tmp_path_factory.mktemp("admin-auth")).start()
    try:
        yield lab
    finally:
        lab.stop()


def test_without_credentials_the_api_is_401_and_the_ui_redirects_to_login(lab: AdminLab) -> None:
    anonymous = lab.client()
    for path in ("/api/v1/status", "/api/v1/config", "/api/v1/config/versions", "/api/v1/openapi.json", "/metrics"):
        answer = anonymous.get(path)
        assert answer.status == 401, path
        assert "WWW-Authenticate" not in answer.headers  # no Basic prompt a browser would cache
    assert anonymous.post("/api/v1/commands/server.drain", json_body={"args": ["0"]}).status == 401
    for path in ("/", "/config", "/versions", "/config/edit/global"):
        answer = anonymous.get(path)
        assert answer.status == 303 and answer.headers["Location"] == "/login", path
    assert anonymous.get("/login").status == 200
    assert anonymous.get("/static/htmx.min.js").status == 200


def test_every_answer_carries_a_csp_without_inline_scripts(lab: AdminLab) -> None:
    for answer in (lab.client().get("/login"), lab.client().get("/api/v1/status")):
        csp = answer.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert answer.headers["X-Frame-Options"] == "DENY"
    page = lab.client().get("/login").text
    assert "<script>" not in page and "<script src=\"/static/htmx.min.js\"" in page


def test_basic_and_bearer_reach_the_api(lab: AdminLab) -> None:
    assert lab.api().get("/api/v1/status").json()["services"]["web"]["pool"] == "web"
    assert lab.client(token=lab.token).get("/api/v1/status").status == 200
    assert lab.client(token="not-the-token").get("/api/v1/status").status == 401
    assert lab.client(basic=(USER, "wrong")).get("/api/v1/status").status == 401


def test_login_sets_a_strict_httponly_session_cookie(lab: AdminLab) -> None:
    client = lab.client()
    answer = client.post("/login", form={"user": USER, "password": PASSWORD})
    assert answer.status == 303 and answer.headers["Location"] == "/"
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie  # plain http here
    assert client.get("/").status == 200
    assert client.get("/api/v1/status").status == 200  # the API takes the session too


def test_state_changing_requests_with_a_session_need_the_csrf_token(lab: AdminLab) -> None:
    client = lab.client()
    csrf = client.login()
    refused = client.post("/ui/server", form={"server": "web/0", "action": "drain"})
    assert refused.status == 403
    refused = client.post("/api/v1/commands/server.drain", json_body={"args": ["0"]},
                          headers={"X-CSRF-Token": "forged"})
    assert refused.status == 403
    assert lab.api().get("/api/v1/config").json()["result"]["pools"]["web"]["servers"][0]["state"] == "enabled"
    assert "without a valid CSRF token" in lab.log_text()
    done = client.post("/api/v1/commands/server.weight", json_body={"args": ["0", 4]},
                       headers={"X-CSRF-Token": csrf})
    assert done.status == 200, done.text
    assert client.post("/ui/server", form={"server": "web/0", "action": "weight", "weight": "1",
                                           "csrf_token": csrf}).status == 303
    assert lab.api().get("/api/v1/config").json()["result"]["pools"]["web"]["servers"][0]["weight"] == 1


def test_scripts_must_send_json_so_a_cross_site_form_cannot_act(lab: AdminLab) -> None:
    answer = lab.api().post("/api/v1/commands/server.drain", form={"args": "0"})
    assert answer.status == 415


def test_logout_ends_the_session(lab: AdminLab) -> None:
    client = lab.client()
    csrf = client.login()
    assert client.post("/logout", form={"csrf_token": csrf}).status == 303
    assert client.get("/").status == 303


def test_changes_are_logged_with_user_and_address(lab: AdminLab) -> None:
    assert lab.api().post("/api/v1/commands/server.prio", json_body={"args": {"server": "1", "prio": 3}}).status == 200
    log = lab.log_text()
    assert "control: server.prio" in log and "by admin user alice from 127.0.0.1" in log


def test_failed_logins_are_limited_per_address_and_logged(tmp_path: Path) -> None:
    lab = AdminLab(tmp_path)
    lab.start()
    try:
        client = lab.client()
        statuses = [client.post("/login", form={"user": USER, "password": f"guess{i}"}).status for i in range(6)]
        assert statuses == [401] * 5 + [429]
        # now even the right password waits, by form and by Basic
        assert client.post("/login", form={"user": USER, "password": PASSWORD}).status == 429
        limited = lab.api().get("/api/v1/status")
        assert limited.status == 429 and int(limited.headers["Retry-After"]) > 0
        assert lab.log_text().count("failed login from 127.0.0.1") == 5
    finally:
        lab.stop()


def test_a_change_from_another_sites_page_is_refused_even_the_login(lab: AdminLab) -> None:
    client = lab.client()
    csrf = client.login()
    evil = {"Origin": "https://evil.example"}
    assert client.post("/login", form={"user": USER, "password": PASSWORD}, headers=evil).status == 403
    assert client.post("/ui/server", form={"server": "web/0", "action": "drain", "csrf_token": csrf},
                       headers=evil).status == 403
    assert client.post("/ui/server", form={"server": "web/0", "action": "weight", "weight": "1",
                                           "csrf_token": csrf},
                       headers={"Sec-Fetch-Site": "cross-site"}).status == 403
    same = {"Origin": lab.url, "Sec-Fetch-Site": "same-origin"}
    assert client.post("/ui/server", form={"server": "web/0", "action": "weight", "weight": "1",
                                           "csrf_token": csrf}, headers=same).status == 303
    assert "from another site (Origin https://evil.example) refused" in lab.log_text()
