"""The web UI in a real browser (chromium through Playwright): login, the live status
page, server actions with real traffic through the proxy, model-validated forms with a
diff, rollback, CSRF, and the API refusing a browser without credentials.

Set FULCRUM_SCREENSHOTS=DIR to save the main pages as PNG files (docs/ holds them)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.admin_lab import PASSWORD, USER, AdminLab, wait_for
from tests.support import free_port

SHOTS = os.environ.get("FULCRUM_SCREENSHOTS")


def shot(page: Any, name: str, full_page: bool = True) -> None:
    if SHOTS:
        page.screenshot(path=str(Path(SHOTS) / f"admin-{name}.png"), full_page=full_page)


@pytest.fixture()
def lab(tmp_path: Path) -> Iterator[AdminLab]:
    lab = AdminLab(tmp_path).start()
    try:
        yield lab
    finally:
        lab.stop()


def login(page: Any, lab: AdminLab) -> None:
    page.goto(lab.url + "/")
    assert page.url.endswith("/login")
    page.fill("#user", USER)
    page.fill("#password", PASSWORD)
    page.press("#password", "Enter")  # the keyboard submits the form
    page.wait_for_url(lab.url + "/")


def server_row(page: Any, lab: AdminLab, index: int) -> Any:
    return page.locator(f'tr[data-server="127.0.0.1:{lab.backends[index].port}"]')


def test_a_wrong_password_is_refused(page: Any, lab: AdminLab) -> None:
    page.goto(lab.url + "/login")
    shot(page, "login")
    page.fill("#user", USER)
    page.fill("#password", "not the password")
    page.click("button[type=submit]")
    assert "Wrong user name or password" in page.locator("#login-error").inner_text()
    assert page.url.endswith("/login")
    page.goto(lab.url + "/config")
    assert page.url.endswith("/login")  # still logged out


def test_status_lists_servers_and_shows_one_going_down_by_itself(page: Any, lab: AdminLab) -> None:
    login(page, lab)
    for index in (0, 1):
        assert server_row(page, lab, index).locator("td.state").inner_text() == "up"
    page.evaluate("window.__marker = 1")  # gone if the page reloads
    lab.backends[1].stop()
    wait_for(lambda: server_row(page, lab, 1).locator("td.state").inner_text() == "down", timeout=15)
    assert "refused" in server_row(page, lab, 1).inner_text()
    assert page.evaluate("window.__marker") == 1  # refreshed in place (htmx), not reloaded
    assert server_row(page, lab, 0).locator("td.state").inner_text() == "up"
    shot(page, "status")
    assert not [e for e in page.csp_errors if "Content Security Policy" in e]


def test_drain_by_keyboard_stops_new_traffic_to_the_server(page: Any, lab: AdminLab) -> None:
    login(page, lab)
    before = [lab.through_proxy() for _ in range(4)]
    assert sorted(set(before)) == ["s0", "s1"]
    page.select_option("#action-server", f"web/{1}")
    page.focus("#action-server")
    page.keyboard.press("Tab")  # to the Drain button
    assert page.evaluate("document.activeElement.value") == "drain"
    page.keyboard.press("Enter")
    page.wait_for_url(lab.url + "/")
    assert "server.drain web/1: done" in page.locator(".flash").inner_text()
    wait_for(lambda: server_row(page, lab, 1).locator("td.state").inner_text() == "drain")
    hits = lab.backends[1].count
    after = [lab.through_proxy() for _ in range(6)]
    assert after == ["s0"] * 6 and lab.backends[1].count == hits


def test_an_invalid_edit_shows_the_error_at_the_field_and_changes_nothing(page: Any, lab: AdminLab) -> None:
    login(page, lab)
    before = lab.path.read_text()
    page.goto(lab.url + "/config/edit/pool:web")
    weight = page.locator("#f-pools-web-servers-0-weight")
    weight.fill("lots")
    page.click("text=Preview the change")
    assert weight.get_attribute("aria-invalid") == "true"
    assert "integer" in page.locator("#f-pools-web-servers-0-weight-error").inner_text()
    assert weight.input_value() == "lots"  # what was typed stays
    shot(page, "invalid", full_page=False)
    assert lab.path.read_text() == before
    assert lab.api().get("/api/v1/config").json()["result"]["pools"]["web"]["servers"][0]["weight"] == 1


def test_rollback_restores_the_previous_version(page: Any, lab: AdminLab) -> None:
    login(page, lab)
    edit_weight(page, lab, 0, "9")
    assert weight_of(lab, 0) == 9
    page.goto(lab.url + "/versions")
    shot(page, "versions")
    rows = page.locator("table.versions tbody tr")
    assert rows.count() == 2 and "(running)" in rows.nth(0).inner_text()
    page.click("text=Roll back to 1")
    page.wait_for_url(lab.url + "/versions")
    assert "Rolled back to version 1" in page.locator(".flash").inner_text()
    assert weight_of(lab, 0) == 1 and lab.file()["pools"]["web"]["servers"][0]["weight"] == 1
    assert "(running)" in page.locator("table.versions tbody tr").nth(0).inner_text()  # version 3


def test_a_request_without_the_csrf_token_is_refused(page: Any, lab: AdminLab) -> None:
    login(page, lab)
    # the browser's own session cookie goes along; only the token is missing
    answer = page.request.post(lab.url + "/ui/server", form={"server": "web/0", "action": "disable"})
    assert answer.status == 403
    answer = page.request.post(lab.url + "/api/v1/commands/server.disable", data={"args": ["0"]})
    assert answer.status == 403
    assert lab.api().get("/api/v1/config").json()["result"]["pools"]["web"]["servers"][0]["state"] == "enabled"
    csrf = page.locator('input[name="csrf_token"]').first.get_attribute("value")
    ok = page.request.post(lab.url + "/ui/server", form={"server": "web/0", "action": "disable", "csrf_token": csrf},
                           max_redirects=0)
    assert ok.status == 303


def test_the_api_without_credentials_is_401(browser: Any, lab: AdminLab) -> None:
    context = browser.new_context()
    try:
        answer = context.new_page().goto(lab.url + "/api/v1/status")
        assert answer.status == 401 and "authentication required" in answer.text()
    finally:
        context.close()


def test_pages_fit_a_phone_width_screen(browser: Any, lab: AdminLab) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True)
    try:
        page = context.new_page()
        login(page, lab)
        for path in ("/", "/config", "/config/edit/pool:web", "/versions"):
            page.goto(lab.url + path)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, f"{path} is {width}px wide"
        page.goto(lab.url + "/")
        shot(page, "phone")
    finally:
        context.close()


def edit_weight(page: Any, lab: AdminLab, index: int, weight: str) -> None:
    page.goto(lab.url + "/config/edit/pool:web")
    page.fill(f"#f-pools-web-servers-{index}-weight", weight)
    page.click("text=Preview the change")
    diff = page.locator("pre.diff").inner_text()
    assert re.search(rf"^\+weight = {weight}$", diff, re.M) and re.search(r"^-weight = 1$", diff, re.M)
    shot(page, "preview")
    page.click("#apply")
    page.wait_for_url(lab.url + "/config")
    assert "Applied" in page.locator(".flash").inner_text()


def weight_of(lab: AdminLab, index: int) -> int:
    weight: int = lab.api().get("/api/v1/config").json()["result"]["pools"]["web"]["servers"][index]["weight"]
    return weight


def test_a_weight_edited_in_the_browser_runs_and_reaches_the_peers_file(page: Any, tmp_path: Path) -> None:
    a_sync, b_sync = free_port(), free_port()
    lb0, lb1 = AdminLab(tmp_path, name="lb0"), AdminLab(tmp_path, name="lb1")
    lb1.backends, lb1.port = lb0.backends, lb0.port  # one service on both (SO_REUSEPORT with workers)

    def sync(lab: AdminLab, listen: int, peer: int) -> dict[str, object]:
        return {"node": lab.name, "listen": f"127.0.0.1:{listen}", "peers": [f"127.0.0.1:{peer}"],
                "secret": "a-shared-secret-of-some-length", "state_dir": str(tmp_path / f"{lab.name}-sync"),
                "interval": "300ms", "timeout": "2s"}

    try:
        lb0.start(sync=sync(lb0, a_sync, b_sync), workers=2)
        lb1.start(sync=sync(lb1, b_sync, a_sync), workers=2)
        login(page, lb0)
        edit_weight(page, lb0, 1, "4")
        wait_for(lambda: weight_of(lb0, 1) == 4, timeout=15)
        assert lb0.file()["pools"]["web"]["servers"][1]["weight"] == 4
        wait_for(lambda: lb1.file()["pools"]["web"]["servers"][1]["weight"] == 4, timeout=15)
        wait_for(lambda: weight_of(lb1, 1) == 4, timeout=15)
    finally:
        lb0.stop()
        lb1.stop()
