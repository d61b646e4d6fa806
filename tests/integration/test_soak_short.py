"""The soak harness itself (tests/soak/soak.py), briefly: 15 s of mixed TCP and HTTP traffic
with a server killed, resets, slow readers and reloads must lose no request that should have
succeeded and leave fulcrum's descriptors and memory flat. `make soak` runs it for 10 minutes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SOAK = Path(__file__).parent.parent / "soak" / "soak.py"


def test_a_short_soak_loses_nothing_and_stays_flat() -> None:
    done = subprocess.run([sys.executable, str(SOAK)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "SOAK_SECONDS": "15"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "soak: PASS" in done.stdout and "server kills" in done.stdout
