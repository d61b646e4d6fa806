from fulcrum.cluster.vrrp.timers import Deadlines


def test_expired_timers_come_out_earliest_first_and_stop():
    deadlines = Deadlines()
    deadlines.start("late", now=0.0, delay=3.0)
    deadlines.start("early", now=0.0, delay=1.0)
    deadlines.start("later", now=0.0, delay=9.0)
    assert deadlines.next_due() == 1.0
    assert deadlines.pop_expired(now=3.0) == ["early", "late"]
    assert deadlines.pop_expired(now=3.0) == []
    assert deadlines.next_due() == 9.0


def test_restart_replaces_the_deadline_and_stop_forgets_it():
    deadlines = Deadlines()
    deadlines.start("t", now=0.0, delay=1.0)
    deadlines.start("t", now=0.5, delay=1.0)
    assert deadlines.pop_expired(now=1.2) == []
    assert deadlines.due_at("t") == 1.5
    deadlines.stop("t")
    assert not deadlines.running("t") and deadlines.next_due() is None
