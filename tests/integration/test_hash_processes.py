"""Hashing schedulers agree across processes: two interpreters with different hash() salts
choose the same servers (the schedulers themselves: tests/unit/balance/test_balance_hashing.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.unit.balance.balance_helpers import HASHED

HELPERS = Path(__file__).resolve().parents[1] / "unit" / "balance"  # balance_helpers, for the child


def test_same_answers_in_other_processes() -> None:
    """Two interpreters with different hash() salts choose the same servers."""
    program = (
        "import json, sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import balance_helpers as h\n"
        "answers = {}\n"
        f"for name in {HASHED!r}:\n"
        "    sched = h.scheduler(name, h.backends([1, 2, 3, 1]))\n"
        "    answers[name] = [sched.pick(h.ctx(client=k)).key for k in h.client_keys(300)]\n"
        "print(json.dumps(answers))\n")
    answers = []
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        done = subprocess.run([sys.executable, "-c", program, str(HELPERS)],
                              env=env, capture_output=True, text=True, timeout=60, check=True)
        answers.append(json.loads(done.stdout))
    assert answers[0] == answers[1]
    assert len(set(answers[0]["mh"])) == 4  # and the answers are not degenerate
