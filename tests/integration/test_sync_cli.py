"""`fulcrum sync versions` and `fulcrum sync rollback` against a running `fulcrum run`
(its peer is absent: versions are made and kept all the same)."""

from __future__ import annotations

import signal
import tomllib
from pathlib import Path

import tomli_w

from fulcrum.config.load import load_file
from tests.support import FulcrumProcess, free_port, run_fulcrum


def test_rollback_rewrites_the_file_and_reloads_the_running_node_as_a_new_version(tmp_path: Path) -> None:
    port = free_port()
    path = tmp_path / "lb0.toml"
    data = {
        "services": {"web": {"listen": [f"127.0.0.1:{port}"], "pool": "web"}},
        "pools": {"web": {"servers": ["127.0.0.1:9001"], "health": {"kind": "none"}}},
        "control": {"pidfile": str(tmp_path / "lb0.pid")},
        "sync": {"node": "lb0", "listen": f"127.0.0.1:{free_port()}",
                 "peers": [f"127.0.0.1:{free_port()}"], "secret": "s" * 20,
                 "state_dir": str(tmp_path / "state"), "interval": "1s", "timeout": "1s"},
    }
    path.write_text(tomli_w.dumps(data))
    node = FulcrumProcess(["run", "-c", str(path)], tmp_path / "lb0.log")
    try:
        node.wait_listening(port)
        node.wait_for_log("at version 1,")
        data["pools"]["web"]["servers"].append("127.0.0.1:9002")
        path.write_text(tomli_w.dumps(data))
        node.signal(signal.SIGHUP)
        node.wait_for_log("local change is version 2")

        listing = run_fulcrum("sync", "versions", "-c", str(path))
        assert listing.returncode == 0, listing.stderr
        lines = listing.stdout.splitlines()
        assert [line.split()[-5:-3] for line in lines] == [["1", "lb0"], ["2", "lb0"]]
        assert lines[1].startswith("*") and not lines[0].startswith("*")

        result = run_fulcrum("sync", "rollback", "1", "-c", str(path))
        assert result.returncode == 0, result.stderr
        assert "reload sent to pid" in result.stdout
        node.wait_for_log("local change is version 3")
        assert len(load_file(path).pools["web"].servers) == 1
        assert tomllib.loads(path.read_text())["sync"]["node"] == "lb0"

        missing = run_fulcrum("sync", "rollback", "99", "-c", str(path))
        assert missing.returncode != 0 and "version 99 is not kept" in missing.stderr
    finally:
        assert node.stop() == 0
