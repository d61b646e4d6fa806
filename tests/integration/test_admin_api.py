"""The REST API over HTTP against a real node: status, config (GET, PUT with model errors,
hitless apply, file, versions, rollback), the command table, OpenAPI, ctl --url, and a
change reaching the peer through config sync."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fulcrum.control.commands import COMMANDS
from tests.integration.admin_lab import PASSWORD, USER, AdminLab, wait_for
from tests.support import FULCRUM, free_port


@pytest.fixture()
def lab(tmp_path: Path) -> Iterator[AdminLab]:
    lab = AdminLab(tmp_path).start()
    try:
        yield lab
    finally:
        lab.stop()


def test_status_names_the_node_and_every_server_with_live_state(lab: AdminLab) -> None:
    api = lab.api()
    for _ in range(4):
        assert lab.through_proxy() in ("s0", "s1")
    lab.backends[1].stop()
    status = wait_for(lambda: (s := api.get("/api/v1/status").json())["pools"]["web"]["servers"][1]["status"] == "down" and s)
    assert status["version"] and status["node"] and status["uptime"] >= 0 and status["config_version"] == 1
    down = status["pools"]["web"]["servers"][1]
    assert down["check"]["ok"] is False and "refused" in down["check"]["reason"]
    assert down["check"]["since_change"] is not None
    up = status["pools"]["web"]["servers"][0]
    assert up["status"] == "up" and up["check"]["ok"] is True
    web = status["services"]["web"]
    assert web["connections"] == 4 and web["bytes_out"] > 0  # the observer's totals
    assert sum(s["connections"] for s in status["pools"]["web"]["servers"]) == 4
    assert status["routers"] == {}


def test_put_config_applies_hitlessly_writes_the_file_and_keeps_versions(lab: AdminLab) -> None:
    api = lab.api()
    config = api.get("/api/v1/config").json()["result"]
    config["pools"]["web"]["servers"][0]["weight"] = 7
    del config["admin"]  # kept as it runs
    answer = api.request("PUT", "/api/v1/config", json_body=config)
    assert answer.status == 200, answer.text
    assert answer.json()["result"]["version"] == 2
    running = api.get("/api/v1/config").json()["result"]
    assert running["pools"]["web"]["servers"][0]["weight"] == 7 and running["admin"]["users"]
    assert lab.file()["pools"]["web"]["servers"][0]["weight"] == 7
    assert lab.through_proxy() in ("s0", "s1")  # still serving on the same listener
    versions = api.get("/api/v1/config/versions").json()["result"]
    assert [(v["version"], v["current"]) for v in versions] == [(1, False), (2, True)]
    assert api.get("/api/v1/config/versions/1").json()["result"]["pools"]["web"]["servers"][0]["weight"] == 1
    rolled = api.post("/api/v1/config/rollback/1", json_body={})
    assert rolled.status == 200, rolled.text
    assert rolled.json()["result"]["version"] == 3
    assert api.get("/api/v1/config").json()["result"]["pools"]["web"]["servers"][0]["weight"] == 1
    assert lab.file()["pools"]["web"]["servers"][0]["weight"] == 1
    assert api.post("/api/v1/config/rollback/99", json_body={}).status == 422


def test_put_an_invalid_config_is_422_with_every_key_path_and_changes_nothing(lab: AdminLab) -> None:
    api = lab.api()
    before = lab.path.read_text()
    config = api.get("/api/v1/config").json()["result"]
    config["pools"]["web"]["servers"][0]["port"] = 70000
    config["pools"]["web"]["scheduler"] = "nosuch"
    config["services"]["web"]["pool"] = "missing"
    answer = api.request("PUT", "/api/v1/config", json_body=config)
    assert answer.status == 422
    paths = {p["path"] for p in answer.json()["problems"]}
    assert {"pools.web.servers[0].port", "pools.web.scheduler"} <= paths
    assert lab.path.read_text() == before
    assert api.get("/api/v1/config").json()["result"]["pools"]["web"]["scheduler"] == "rr"
    assert len(api.get("/api/v1/config/versions").json()["result"]) == 1
    assert api.request("PUT", "/api/v1/config", json_body=[1]).status == 422


def test_commands_run_from_the_table_with_its_errors(lab: AdminLab) -> None:
    api = lab.api()
    assert {c["name"] for c in api.get("/api/v1/commands").json()} == set(COMMANDS)
    drained = api.post("/api/v1/commands/server.drain", json_body={"args": ["web/1"]})
    assert drained.status == 200 and drained.json()["result"]["state"] == "drain"
    assert api.post("/api/v1/commands/server.drain", json_body={"args": ["9"]}).status == 400
    bad = api.post("/api/v1/commands/server.weight", json_body={"args": {"server": "0", "weight": -1}})
    assert bad.status == 400 and "weight" in bad.json()["error"]
    assert api.post("/api/v1/commands/nosuch", json_body={}).status == 404
    listed = api.post("/api/v1/commands/servers", json_body={"args": []}).json()["result"]
    assert [s["state"] for s in listed] == ["enabled", "drain"]


def test_openapi_is_generated_from_the_model_and_the_command_table(lab: AdminLab) -> None:
    document = lab.api().get("/api/v1/openapi.json").json()
    assert document["openapi"].startswith("3.")
    schemas = document["components"]["schemas"]
    assert {"Config", "Pool", "Server", "Admin"} <= set(schemas)
    assert schemas["Server"]["properties"]["weight"]["maximum"] == 65535
    for name in COMMANDS:
        assert f"/api/v1/commands/{name}" in document["paths"]
    weight = document["paths"]["/api/v1/commands/server.weight"]["post"]
    args = weight["requestBody"]["content"]["application/json"]["schema"]["properties"]["args"]["oneOf"][0]
    assert args["required"] == ["server", "weight"] and args["properties"]["weight"]["type"] == "integer"


def test_ctl_url_runs_a_command_through_the_api(lab: AdminLab, tmp_path: Path) -> None:
    env = {**os.environ, "FULCRUM_USER": USER, "FULCRUM_PASSWORD": PASSWORD}
    done = subprocess.run([FULCRUM, "ctl", "--url", lab.url, "server.disable", "0"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "disabled"
    token_env = {**os.environ, "FULCRUM_TOKEN": lab.token}
    failed = subprocess.run([FULCRUM, "ctl", "--url", lab.url, "server.weight", "0", "x"], env=token_env,
                            capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1 and "400" in failed.stderr and "weight" in failed.stderr
    bare = {k: v for k, v in os.environ.items() if not k.startswith("FULCRUM_")}
    nocreds = subprocess.run([FULCRUM, "ctl", "--url", lab.url, "status"], env=bare,
                             capture_output=True, text=True, timeout=60)
    assert nocreds.returncode == 2 and "credentials" in nocreds.stderr and "Traceback" not in nocreds.stderr


def sync_section(lab: AdminLab, listen: int, peer: int) -> dict[str, object]:
    return {"node": lab.name, "listen": f"127.0.0.1:{listen}", "peers": [f"127.0.0.1:{peer}"],
            "secret": "a-shared-secret-of-some-length", "state_dir": str(lab.root / f"{lab.name}-sync"),
            "interval": "300ms", "timeout": "2s"}


def test_put_config_reaches_the_peer_through_config_sync(tmp_path: Path) -> None:
    a_sync, b_sync = free_port(), free_port()
    lb0 = AdminLab(tmp_path, name="lb0")
    lb1 = AdminLab(tmp_path, name="lb1")
    lb1.backends = lb0.backends  # the same real servers behind both nodes
    lb1.port = lb0.port  # the same service address, as on two machines: bound with SO_REUSEPORT,
    # which `fulcrum run` uses with several workers (so this also runs the admin plane beside
    # the first of two workers, and a change written to the file and reloaded by each)
    try:
        lb0.start(sync=sync_section(lb0, a_sync, b_sync), workers=2)
        lb1.start(sync=sync_section(lb1, b_sync, a_sync), workers=2)
        api = lb0.api()
        config = api.get("/api/v1/config").json()["result"]
        config["pools"]["web"]["servers"][1]["weight"] = 5
        assert api.request("PUT", "/api/v1/config", json_body=config).status == 200
        wait_for(lambda: lb1.file()["pools"]["web"]["servers"][1]["weight"] == 5, timeout=15)
        peer = wait_for(lambda: (c := lb1.api().get("/api/v1/config").json()["result"])
                        ["pools"]["web"]["servers"][1]["weight"] == 5 and c, timeout=15)
        assert peer["pools"]["web"]["servers"][1]["weight"] == 5
        assert peer["admin"]["listen"] == [f"127.0.0.1:{lb1.admin_port}"]  # node-local, not synced
        versions = wait_for(lambda: (v := api.get("/api/v1/config/versions").json()["result"])[-1]["current"] and v)
        assert versions[-1]["node"] == "lb0" and len(versions) >= 2
    finally:
        lb0.stop()
        lb1.stop()


def test_a_changed_admin_section_restarts_the_admin_plane_on_its_new_address(lab: AdminLab) -> None:
    api = lab.api()
    config = api.get("/api/v1/config").json()["result"]
    old, new = lab.admin_port, free_port()
    config["admin"]["listen"] = [f"127.0.0.1:{new}"]
    answer = api.request("PUT", "/api/v1/config", json_body=config)
    assert answer.status == 200, answer.text  # answered by the old plane, which then stops
    lab.admin_port = new
    assert wait_for(lambda: lab._admin_up())
    assert lab.api().get("/api/v1/status").json()["config_version"] == 2
    lab.admin_port = old
    wait_for(lambda: not lab._admin_up())
    assert lab.through_proxy() in ("s0", "s1")
