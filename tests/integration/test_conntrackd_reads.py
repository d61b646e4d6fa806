"""conntrackd itself reads the conntrackd.conf fulcrum renders from `cluster.conntrack` (the
rendering: tests/unit/cluster/test_conntrackd.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from fulcrum.cluster.conntrackd import render
from tests.unit.cluster.test_conntrackd import sync


@pytest.mark.skipif(shutil.which("conntrackd") is None, reason="conntrackd is not installed")
def test_conntrackd_reads_the_rendered_file(tmp_path: Path) -> None:
    # conntrackd parses the file before it needs netlink; a syntax error names the line.
    # -s (a client command) parses it and then fails to reach a daemon, which is the point.
    config = tmp_path / "conntrackd.conf"
    config.write_text(render(sync(state_dir=str(tmp_path))))
    result = subprocess.run(["conntrackd", "-C", str(config), "-s"], capture_output=True, text=True, timeout=10)
    assert "parsing" not in (result.stdout + result.stderr).lower(), result.stderr
    broken = tmp_path / "broken.conf"
    broken.write_text(render(sync(state_dir=str(tmp_path))).replace("Port 3780", "Port"))
    result = subprocess.run(["conntrackd", "-C", str(broken), "-s"], capture_output=True, text=True, timeout=10)
    assert "pars" in (result.stdout + result.stderr).lower()  # the check above can fail
