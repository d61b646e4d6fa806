"""The VRRP state machine, alone and as two or three routers on a fake wire."""

import ipaddress

import pytest
from fakewire import Wire

from fulcrum.cluster.vrrp import fsm
from fulcrum.cluster.vrrp.fsm import State

LATENCY = 0.001


def machine(priority=100, advert_centis=100, **params):
    return fsm.VrrpMachine(fsm.Params(priority, advert_centis, ipaddress.ip_address("198.18.0.1"), **params))


# -- one machine ---------------------------------------------------------------------------

def test_skew_and_master_down_interval_follow_rfc_6_1():
    vr = machine(priority=100, advert_centis=100)
    assert vr.skew_time == pytest.approx((256 - 100) * 1.0 / 256)
    assert vr.master_down_interval == pytest.approx(3 * 1.0 + (256 - 100) / 256)


def test_startup_as_backup_arms_the_master_down_timer():
    vr = machine(priority=100)
    actions = vr.handle(fsm.Startup(), now=0.0)
    assert vr.state is State.BACKUP
    assert actions == [fsm.StartTimer(fsm.Timer.MASTER_DOWN, vr.master_down_interval), fsm.Notify("backup")]


def test_address_owner_is_master_at_once():
    vr = machine(priority=255)
    actions = vr.handle(fsm.Startup(), now=0.0)
    assert vr.state is State.MASTER
    assert fsm.SendAdvert(255) in actions and fsm.Announce() in actions
    assert actions.index(fsm.AddVips(accept=True)) < actions.index(fsm.Announce())


def test_backup_learns_the_masters_advert_interval():
    vr = machine(priority=100, advert_centis=100)
    vr.handle(fsm.Startup(), now=0.0)
    actions = vr.handle(fsm.AdvertReceived(200, 5, ipaddress.ip_address("198.18.0.2")), now=1.0)
    assert vr.master_adver_centis == 5
    [start] = actions
    assert start.timer is fsm.Timer.MASTER_DOWN
    assert start.seconds == pytest.approx(3 * 0.05 + (156 * 0.05) / 256)


@pytest.mark.parametrize("state_events, event", [
    ([], fsm.Shutdown()),
    ([], fsm.MasterDownTimerFired()),
    ([fsm.Startup()], fsm.Startup()),
    ([fsm.Startup()], fsm.AdverTimerFired()),
    ([fsm.Startup(), fsm.MasterDownTimerFired()], fsm.MasterDownTimerFired()),
])
def test_illegal_transitions_raise(state_events, event):
    vr = machine()
    for earlier in state_events:
        vr.handle(earlier, now=0.0)
    with pytest.raises(fsm.IllegalTransition):
        vr.handle(event, now=1.0)


def test_master_shutdown_sends_priority_zero_and_releases_addresses():
    vr = machine()
    vr.handle(fsm.Startup(), now=0.0)
    vr.handle(fsm.MasterDownTimerFired(), now=4.0)
    actions = vr.handle(fsm.Shutdown(fault=True), now=5.0)
    assert vr.state is State.INITIALIZE
    assert actions == [fsm.StopTimer(fsm.Timer.ADVER), fsm.SendAdvert(0), fsm.RemoveVips(), fsm.Notify("fault")]


def test_owner_priority_is_not_tracked():
    vr = machine(priority=255)
    with pytest.raises(ValueError):
        vr.handle(fsm.PriorityChanged(200), now=0.0)


def test_accept_mode_flag_reaches_add_vips():
    vr = machine(accept=False)
    vr.handle(fsm.Startup(), now=0.0)
    assert fsm.AddVips(accept=False) in vr.handle(fsm.MasterDownTimerFired(), now=4.0)


# -- routers on a wire ------------------------------------------------------------------------

def two(a_priority=200, b_priority=100, **b_params):
    wire = Wire(latency=LATENCY)
    wire.add("a", a_priority, "198.18.0.1")
    wire.add("b", b_priority, "198.18.0.2", **b_params)
    return wire


def test_higher_priority_is_elected_and_holds_the_vips():
    wire = two()
    wire.start("a")
    wire.start("b")
    wire.run_until(10.0)
    assert wire.masters() == ["a"] and wire.vip_holders() == ["a"]
    assert wire.routers["b"].state is State.BACKUP
    # a became master when its own Master_Down_Interval ran out, with no master around.
    assert wire.routers["a"].notified[-1] == (pytest.approx(3 + 56 / 256), "master")


def test_higher_priority_joining_later_preempts():
    wire = two()
    wire.start("b")
    wire.run_until(5.0)
    assert wire.masters() == ["b"]
    wire.start("a")
    took_over = wire.run_until_state("a", State.MASTER, limit=20.0)
    # a discards b's lower-priority adverts and its Master_Down_Timer fires (§6.4.2).
    assert took_over == pytest.approx(5.0 + wire.routers["a"].machine.master_down_interval)
    wire.run_until(took_over + 2 * LATENCY)
    assert wire.masters() == ["a"] and wire.vip_holders() == ["a"]


def test_without_preempt_a_higher_priority_backup_stays_backup():
    wire = Wire(latency=LATENCY)
    wire.add("a", 200, "198.18.0.1", preempt=False)
    wire.add("b", 100, "198.18.0.2")
    wire.start("b")
    wire.run_until(5.0)
    wire.start("a")
    wire.run_until(60.0)
    assert wire.masters() == ["b"] and wire.vip_holders() == ["b"]


def test_preempt_delay_holds_off_the_takeover():
    wire = Wire(latency=LATENCY)
    wire.add("a", 200, "198.18.0.1", preempt_delay=10.0)
    wire.add("b", 100, "198.18.0.2")
    wire.start("b")
    wire.run_until(5.0)
    wire.start("a")
    took_over = wire.run_until_state("a", State.MASTER, limit=60.0)
    first_seen = 6.0 + LATENCY  # b's first advert after a started
    assert first_seen + 10.0 <= took_over <= first_seen + 10.0 + wire.routers["a"].machine.master_down_interval
    wire.run_until(took_over + 1.0)
    assert wire.masters() == ["a"]


def test_crashed_master_is_replaced_after_master_down_interval():
    wire = two()
    wire.start("a")
    wire.start("b")
    wire.run_until(10.0)
    last_advert = wire.routers["a"].sent[-1][0]
    wire.crash("a")
    took_over = wire.run_until_state("b", State.MASTER, limit=30.0)
    assert took_over == pytest.approx(last_advert + LATENCY + wire.routers["b"].machine.master_down_interval)
    assert wire.vip_holders() == ["b"]


def test_priority_zero_means_takeover_after_skew_time_only():
    wire = two()
    wire.start("a")
    wire.start("b")
    wire.run_until(10.0)
    wire.stop("a")
    assert wire.routers["a"].sent[-1] == (10.0, 0)
    took_over = wire.run_until_state("b", State.MASTER, limit=30.0)
    assert took_over == pytest.approx(10.0 + LATENCY + wire.routers["b"].machine.skew_time)
    assert wire.routers["a"].notified[-1] == (10.0, "stop")


def test_equal_priority_tie_break_on_higher_primary_address():
    wire = Wire(latency=LATENCY)
    wire.add("low", 100, "198.18.0.1")
    wire.add("high", 100, "198.18.0.9")
    wire.start("low")
    wire.start("high")
    wire.run_until(10.0)
    # Both time out at once and become master; the lower address yields (§6.4.3).
    assert wire.masters() == ["high"] and wire.vip_holders() == ["high"]
    assert [state for _, state in wire.routers["low"].notified] == ["backup", "master", "backup"]


def test_tie_break_also_works_for_ipv6():
    wire = Wire(latency=LATENCY)
    wire.add("low", 100, "fe80::1")
    wire.add("high", 100, "fe80::1:0")
    wire.start("low")
    wire.start("high")
    wire.run_until(10.0)
    assert wire.masters() == ["high"]


def test_partition_then_heal_leaves_exactly_one_master_within_two_adverts():
    wire = Wire(latency=LATENCY)
    for name, priority, address in [("a", 150, "198.18.0.1"), ("b", 150, "198.18.0.2"), ("c", 100, "198.18.0.3")]:
        wire.add(name, priority, address)
        wire.start(name)
    wire.run_until(10.0)
    assert wire.masters() == ["b"]
    wire.partition({"a"}, {"b"}, {"c"})
    wire.run_until(20.0)
    assert wire.masters() == ["a", "b", "c"]
    wire.heal()
    heal_time = wire.now
    wire.run_until(heal_time + 1.0 + 2 * LATENCY)  # one advert round and its answer
    assert wire.masters() == ["b"]  # equal priority with a: the higher address wins
    assert wire.vip_holders() == ["b"]
    # b answered the other masters' adverts with its own and announced the VIPs again.
    assert any(heal_time < t <= heal_time + 1.0 + 2 * LATENCY for t in wire.routers["b"].announced)
    wire.run_until(heal_time + 30.0)
    assert wire.masters() == ["b"]


def test_lowered_priority_lets_a_preempting_backup_take_over():
    wire = two(a_priority=200, b_priority=150)
    wire.start("a")
    wire.start("b")
    wire.run_until(10.0)
    wire.set_priority("a", 100)  # a tracked interface failed on a
    wire.run_until_state("b", State.MASTER, limit=20.0)
    wire.run_until(wire.now + 2.0)
    assert wire.masters() == ["b"] and wire.vip_holders() == ["b"]


def test_fault_then_recovery_rejoins_as_backup():
    wire = two()
    wire.start("a")
    wire.start("b")
    wire.run_until(10.0)
    wire.stop("b", fault=True)
    assert wire.routers["b"].notified[-1] == (10.0, "fault")
    wire.start("b")
    wire.run_until(30.0)
    assert wire.masters() == ["a"] and wire.routers["b"].state is State.BACKUP


def test_fast_adverts_fail_over_proportionally_faster():
    wire = Wire(latency=LATENCY)
    wire.add("a", 200, "198.18.0.1", advert_centis=5)
    wire.add("b", 100, "198.18.0.2", advert_centis=5)
    wire.start("a")
    wire.start("b")
    wire.run_until(2.0)
    last_advert = wire.routers["a"].sent[-1][0]
    wire.crash("a")
    took_over = wire.run_until_state("b", State.MASTER, limit=5.0)
    assert took_over - last_advert == pytest.approx(LATENCY + 3 * 0.05 + 156 * 0.05 / 256)


def test_master_answers_a_lower_master_at_once_and_announces_again():
    vr = machine(priority=200)
    vr.handle(fsm.Startup(), now=0.0)
    vr.handle(fsm.MasterDownTimerFired(), now=4.0)
    actions = vr.handle(fsm.AdvertReceived(100, 100, ipaddress.ip_address("198.18.0.9")), now=4.5)
    assert vr.state is State.MASTER
    assert actions == [fsm.SendAdvert(200), fsm.StartTimer(fsm.Timer.ADVER, 1.0), fsm.Announce()]


# -- version 2 (RFC 3768) --------------------------------------------------------------------

@pytest.mark.parametrize("priority, advert_seconds", [(100, 1), (150, 1), (100, 3), (1, 2)])
def test_v2_skew_is_seconds_whatever_the_interval(priority, advert_seconds):
    # RFC 3768 §6.1: Skew_Time = (256 - Priority) / 256; Master_Down_Interval =
    # 3 * Advertisement_Interval + Skew_Time. (Version 3 scales the skew by the interval.)
    vr = machine(priority=priority, advert_centis=100 * advert_seconds, version=2)
    assert vr.skew_time == pytest.approx((256 - priority) / 256)
    assert vr.master_down_interval == pytest.approx(3 * advert_seconds + (256 - priority) / 256)
    v3 = machine(priority=priority, advert_centis=100 * advert_seconds)
    assert v3.skew_time == pytest.approx((256 - priority) * advert_seconds / 256)


def test_v2_backup_keeps_its_own_interval():
    # RFC 3768 has no Master_Adver_Interval: the master-down interval is the backup's own.
    vr = machine(priority=100, advert_centis=200, version=2)
    vr.handle(fsm.Startup(), now=0.0)
    [start] = vr.handle(fsm.AdvertReceived(200, 100, ipaddress.ip_address("198.18.0.2")), now=1.0)
    assert vr.master_adver_centis == 200
    assert start.seconds == pytest.approx(3 * 2 + 156 / 256)


def test_v2_interval_must_be_whole_seconds():
    with pytest.raises(ValueError, match="whole seconds"):
        machine(advert_centis=50, version=2)
    with pytest.raises(ValueError, match="version"):
        machine(version=4)


def v2_pair(advert_centis: int, until: float) -> Wire:
    """lb0 (200) master and lb1 (100) backup, both version 2, settled by `until`."""
    wire = Wire(latency=LATENCY)
    wire.add("lb0", 200, "198.18.0.1", advert_centis=advert_centis, version=2)
    wire.add("lb1", 100, "198.18.0.2", advert_centis=advert_centis, version=2)
    wire.start("lb0")
    wire.start("lb1")
    wire.run_until(until)
    return wire


def test_v2_crashed_master_is_replaced_after_its_master_down_interval():
    wire = v2_pair(200, until=20.0)
    assert wire.masters() == ["lb0"]
    last_advert = wire.routers["lb0"].sent[-1][0]
    wire.crash("lb0")
    took_over = wire.run_until_state("lb1", State.MASTER, limit=40.0)
    assert took_over == pytest.approx(last_advert + LATENCY + 3 * 2 + 156 / 256)


def test_v2_stopping_master_hands_over_after_skew_time():
    wire = v2_pair(300, until=30.0)
    wire.stop("lb0")
    took_over = wire.run_until_state("lb1", State.MASTER, limit=40.0) - 30.0
    assert took_over == pytest.approx(156 / 256 + LATENCY)
