"""Two `fulcrum run` nodes with a sync section: the talk's "be sure to make all changes
on BOTH hosts" no longer applies. An edit of lb0's file and a SIGHUP to lb0 change
what lb1 serves, and lb1 keeps its own VRRP priority; lb1, restarted, comes back with
the change (it was written to its file)."""

from __future__ import annotations

import json
import signal
import sys
import tomllib

from conftest import VIP4, Lab, Node
from tests.support import FULCRUM, wait_for
from vrrp_lab import NAME_SERVER, PORT, ask_vip

BACKEND_PORT = 9000
SYNC_PORT = 7946


def node_toml(lab: Lab, node: Node, peer: Node, priority: int, servers: tuple[str, ...],
              workers: int = 1) -> str:
    listed = ", ".join(f'"{lab[rs].v4}:{BACKEND_PORT}"' for rs in servers)
    return f"""
workers = {workers}

[services.web]
listen = ["0.0.0.0:{PORT}"]
pool = "web"

[pools.web]
servers = [{listed}]
health = {{ kind = "tcp", interval = "200ms", timeout = "200ms" }}

[cluster.virtual_routers.v4]
vrid = 62
interface = "eth0"
priority = {priority}
advert_interval = "100ms"
vips = ["{VIP4}/24"]

[sync]
node = "{node.name}"
listen = "{node.v4}:{SYNC_PORT}"
peers = ["{peer.v4}:{SYNC_PORT}"]
secret_file = "{lab.workdir / 'sync.key'}"
state_dir = "{lab.workdir / node.name}"
interval = "500ms"
timeout = "1s"
"""


def start(lab: Lab, name: str, peer: str, priority: int, servers: tuple[str, ...] | None,  # type: ignore[no-untyped-def]
          workers: int = 1):
    config = lab.workdir / f"{name}.toml"
    if servers is not None:
        config.write_text(node_toml(lab, lab[name], lab[peer], priority, servers, workers))
    return lab[name].popen(FULCRUM, "run", "-c", str(config), log=lab.workdir / f"{name}.log")


def setup(lab: Lab) -> None:
    key = lab.workdir / "sync.key"
    key.write_text("a key shared by lb0 and lb1 only\n")
    key.chmod(0o600)
    script = lab.workdir / "name_server.py"
    script.write_text(NAME_SERVER)
    for rs in ("rs1", "rs2"):
        lab[rs].popen(sys.executable, str(script), rs, lab[rs].v4, str(BACKEND_PORT))


def answers(lab: Lab, node: str, count: int = 8) -> set[str]:
    return {ask_vip(lab["client"], lab[node].v4) for _ in range(count)}


def test_a_reload_on_lb0_changes_what_lb1_serves_and_survives_its_restart(lab: Lab) -> None:
    setup(lab)
    both = ("rs1", "rs2")
    lb0 = start(lab, "lb0", "lb1", 150, both)
    lb1 = start(lab, "lb1", "lb0", 100, both)
    wait_for(lambda: answers(lab, "lb1") == {"rs1", "rs2"}, 15, what="lb1 to serve rs1 and rs2")

    # Only lb0's file is edited (rs2 removed), then lb0 is told to reload.
    (lab.workdir / "lb0.toml").write_text(node_toml(lab, lab["lb0"], lab["lb1"], 150, ("rs1",)))
    lb0.send_signal(signal.SIGHUP)
    wait_for(lambda: answers(lab, "lb1") == {"rs1"}, 15, what="lb1 to serve only rs1")
    assert answers(lab, "lb0") == {"rs1"}

    synced = tomllib.loads((lab.workdir / "lb1.toml").read_text())
    router = synced["cluster"]["virtual_routers"]["v4"]
    assert router["priority"] == 100  # lb1's own, node-local
    assert synced["sync"]["node"] == "lb1" and synced["sync"]["listen"].startswith(lab["lb1"].v4)
    assert len(synced["pools"]["web"]["servers"]) == 1
    assert "sync: applied version" in (lab.workdir / "lb1.log").read_text()

    # Both stop; lb1 starts alone from its own file (no peer to pull from): the change is there.
    for process in (lb0, lb1):
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    start(lab, "lb1", "lb0", 100, None)
    wait_for(lambda: answers(lab, "lb1") != {""}, 15, what="restarted lb1 to serve")
    assert answers(lab, "lb1") == {"rs1"}


def test_every_worker_process_of_the_peer_takes_the_change(lab: Lab) -> None:
    setup(lab)
    both = ("rs1", "rs2")
    lb0 = start(lab, "lb0", "lb1", 150, both)
    lb1 = start(lab, "lb1", "lb0", 100, both, workers=2)  # workers is node-local
    wait_for(lambda: answers(lab, "lb1") == {"rs1", "rs2"}, 15, what="lb1 to serve rs1 and rs2")

    log = lab.workdir / "lb1.log"
    before = len(log.read_text())
    (lab.workdir / "lb0.toml").write_text(node_toml(lab, lab["lb0"], lab["lb1"], 150, ("rs1",)))
    lb0.send_signal(signal.SIGHUP)
    wait_for(lambda: answers(lab, "lb1", 16) == {"rs1"}, 15, what="lb1 to serve only rs1")
    # The answers can come from the worker that took the change first; each worker logs its
    # own reload, and the status below is asked for once both have.
    wait_for(lambda: log.read_text()[before:].count("configuration reloaded") >= 2, 15,
             what="both of lb1's workers to reload")
    # Each worker logs its own status on SIGUSR1: both must run the one-server pool.
    seen = len(log.read_text())
    lb1.send_signal(signal.SIGUSR1)

    def pool_sizes() -> list[int]:
        # `... status {json}` or, in key=value logs, `... status status={json}`; whole lines
        # only (a worker may be half way through writing its own)
        text = log.read_text()[seen:]
        lines = [line for line in text[:text.rfind("\n") + 1].splitlines()
                 if " status {" in line or " status={" in line]
        return [len(json.loads(line[line.index("{"):])["pools"]["web"]["servers"]) for line in lines]

    wait_for(lambda: len(pool_sizes()) >= 2, 10, what="both workers' status")
    assert pool_sizes() == [1, 1]
    assert tomllib.loads((lab.workdir / "lb1.toml").read_text())["workers"] == 2
