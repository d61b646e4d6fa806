"""The model checks a pool's scheduler options without building the scheduler
(config/schedulers.py); building it must refuse exactly the same options."""

from __future__ import annotations

import pytest

from fulcrum.balance.base import Backend
from fulcrum.balance.registry import make_scheduler
from fulcrum.config.schedulers import SCHEDULERS, option_problem

OPTIONS = [
    {},
    {"table_size": 251}, {"table_size": 1021}, {"table_size": 250}, {"table_size": 256},
    {"table_size": 0}, {"table_size": -3}, {"table_size": 2.5}, {"table_size": True},
    {"table_size": "big"},
    {"expiry": 60}, {"expiry": 0.5}, {"expiry": 0}, {"expiry": "1h"},
    {"set_expiry": 10}, {"set_expiry": -1}, {"set_expiry": False},
    {"seed": 7}, {"seed": "x"}, {"fallback": False}, {"unknown": 1},
]


# 11000 servers: only mh's table size depends on the number of servers (and building the
# hash tables of sh or dh for so many takes minutes)
CASES = [(s, n) for s in sorted(SCHEDULERS) for n in (1, 3)] + [("mh", 11000)]


@pytest.mark.parametrize(("scheduler", "servers"), CASES)
def test_the_model_and_the_scheduler_refuse_the_same_options(scheduler: str, servers: int) -> None:
    backends = [Backend(f"10.0.{i // 250}.{i % 250 + 1}:80", f"10.0.{i // 250}.{i % 250 + 1}", 80) for i in range(servers)]
    # a table of 2 million slots: out of range for mh; sh and dh would build it (seconds)
    for options in OPTIONS + ([{"table_size": 2_000_003}] if scheduler == "mh" else []):
        problem = option_problem(scheduler, options, servers)
        try:
            make_scheduler(scheduler, backends, options)
        except ValueError as err:
            assert problem == str(err), (scheduler, options)
        else:
            assert problem is None, (scheduler, options)
