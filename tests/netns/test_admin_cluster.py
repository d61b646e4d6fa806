"""The admin plane of a cluster node: every VRRP router's state, priority, transitions and
the peer heard, reported by the engine process to the node, in the status API and the
metrics — on both nodes, and after a failover."""

from __future__ import annotations

import json
import os
import signal

from conftest import Lab, Node
from tests.support import FULCRUM, wait_for
from vrrp_lab import node_toml

from fulcrum.admin.auth import hash_password

ADMIN = f"""
[admin]
listen = ["127.0.0.1:3636"]
state_dir = "{{state}}"
[admin.users]
ops = "{hash_password('cluster-pass', n=2**10)}"
"""


def start(node: Node, lab: Lab, priority: int) -> object:
    config = lab.workdir / f"{node.name}-admin.toml"
    config.write_text(node_toml(lab, priority) + ADMIN.format(state=lab.workdir / f"{node.name}-state"))
    return node.popen(str(FULCRUM), "run", "-c", str(config), log=lab.workdir / f"{node.name}.log")


def get(node: Node, path: str) -> str:
    done = node.run("curl", "-s", "-f", "-u", "ops:cluster-pass", f"http://127.0.0.1:3636{path}",
                    check=False)
    return done.stdout if done.returncode == 0 else ""


def routers(node: Node) -> dict[str, dict[str, object]]:
    text = get(node, "/api/v1/status")
    return json.loads(text)["routers"] if text else {}


def test_router_states_and_the_peer_reach_the_status_api_and_metrics(lab: Lab) -> None:
    lb0 = start(lab["lb0"], lab, priority=150)
    start(lab["lb1"], lab, priority=100)
    wait_for(lambda: routers(lab["lb0"]).get("v4", {}).get("state") == "master", 30,
             what="lb0's status to say master")
    backup = wait_for(lambda: (r := routers(lab["lb1"])).get("v4", {}).get("peer") and r, 30,
                      what="lb1's status to name the master it hears")
    assert backup["v4"]["state"] == "backup" and backup["v4"]["priority"] == 100
    assert backup["v4"]["peer"]["priority"] == 150 and backup["v4"]["peer"]["address"] == lab["lb0"].v4
    assert backup["v6"]["state"] == "backup" and backup["v6"]["vips"]
    metrics = get(lab["lb0"], "/metrics")
    assert 'fulcrum_vrrp_state{router="v4",state="master"} 1.0' in metrics
    assert 'fulcrum_vrrp_priority{router="v4"} 150.0' in metrics

    os.kill(lb0.pid, signal.SIGTERM)  # stops, hands over with priority 0 adverts
    after = wait_for(lambda: (r := routers(lab["lb1"])).get("v4", {}).get("state") == "master" and r, 30,
                     what="lb1's status to say master")
    assert after["v4"]["transitions"] >= 2  # initialize -> backup -> master
    assert 'fulcrum_vrrp_state{router="v4",state="master"} 1.0' in get(lab["lb1"], "/metrics")
