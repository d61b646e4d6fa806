"""Notify hooks (keepalived's notify_master and the like) run as child processes: in the order of
the state changes; a failing or hanging one is logged and does not stop the rest."""

import asyncio
import logging
import sys

from fulcrum.cluster.hooks import HookRunner
from fulcrum.config.cluster import Notify


def run(notify: Notify, states: list[str]) -> None:
    async def main() -> None:
        hooks = HookRunner("web", notify)
        for state in states:
            hooks.state_changed(state)
        await hooks.wait()
    asyncio.run(asyncio.wait_for(main(), timeout=20))


def appender(path, text):
    return f"{sys.executable} -c \"import os; open({str(path)!r}, 'a').write({text!r} + os.environ['FULCRUM_STATE'] + ',')\""


def test_hooks_run_in_order_of_the_state_changes(tmp_path):
    out = tmp_path / "out"
    notify = Notify(on_master=[appender(out, "m1:"), appender(out, "m2:")], on_backup=[appender(out, "b:")],
                    on_stop=[appender(out, "s:")])
    run(notify, ["backup", "master", "backup", "stop"])
    assert out.read_text() == "b:backup,m1:master,m2:master,b:backup,s:stop,"


def test_failing_and_hanging_hooks_are_logged_and_do_not_stop_the_rest(tmp_path, caplog):
    out = tmp_path / "out"
    notify = Notify(on_master=[f"{sys.executable} -c 'raise SystemExit(3)'",
                               f"{sys.executable} -c 'import time; time.sleep(30)'",
                               "/nonexistent/hook",
                               appender(out, "after:")], timeout=0.5)
    with caplog.at_level(logging.WARNING, logger="fulcrum.cluster.hooks"):
        run(notify, ["master"])
    assert out.read_text() == "after:master,"
    messages = " ".join(record.getMessage() for record in caplog.records)
    assert "status 3" in messages and "killed after 0.5s" in messages and "could not start" in messages
