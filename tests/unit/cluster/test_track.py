import pytest

from fulcrum.cluster.track import Tracking, Verdict


def test_negative_weight_lowers_while_failed_positive_raises_while_healthy():
    tracking = Tracking(100)
    tracking.add("interface eth1", -30)
    tracking.add("ping 198.18.0.9", 20)
    assert tracking.verdict() == Verdict(120, False, ())
    assert tracking.set("interface eth1", False)
    assert tracking.verdict() == Verdict(90, False, ("interface eth1",))
    tracking.set("ping 198.18.0.9", False)
    assert tracking.verdict() == Verdict(70, False, ("interface eth1", "ping 198.18.0.9"))
    assert not tracking.set("ping 198.18.0.9", False)


def test_weight_zero_failure_is_a_fault():
    tracking = Tracking(100)
    tracking.add("pool web", 0)
    tracking.set("pool web", False)
    assert tracking.verdict().fault
    tracking.set("pool web", True)
    assert not tracking.verdict().fault


def test_priority_stays_within_1_and_254():
    tracking = Tracking(240)
    tracking.add("a", 50)
    tracking.add("b", -254, healthy=False)
    assert tracking.verdict().priority == 36
    tracking.set("a", False)
    assert tracking.verdict().priority == 1
    tracking.set("a", True)
    tracking.set("b", True)
    assert tracking.verdict().priority == 254


def test_the_address_owner_is_never_lowered_but_can_fault():
    tracking = Tracking(255)
    tracking.add("interface eth1", -50, healthy=False)
    tracking.add("pool web", 0, healthy=False)
    assert tracking.verdict() == Verdict(255, True, ("interface eth1", "pool web"))


def test_unknown_objects_are_an_error():
    with pytest.raises(KeyError):
        Tracking(100).set("interface eth9", False)
