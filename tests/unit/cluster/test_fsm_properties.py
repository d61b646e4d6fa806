"""Whatever happens on the wire (starts, stops, crashes, partitions, priority changes),
once it heals and settles there is exactly one master, and (all preempting) none of the
others has a higher priority. Among equal priorities the first master stays: a backup
accepts an equal-priority master (§6.4.2); only two masters tie-break on address (§6.4.3)."""

from fakewire import Wire
from hypothesis import given, settings
from hypothesis import strategies as st

from fulcrum.cluster.vrrp.fsm import State

NAMES = ["a", "b", "c", "d"]


@st.composite
def scenarios(draw):
    count = draw(st.integers(2, 4))
    routers = [(NAMES[i], draw(st.integers(1, 254)), f"198.18.0.{i + 1}", draw(st.sampled_from([5, 10, 100])))
               for i in range(count)]
    names = [name for name, *_ in routers]
    events = draw(st.lists(st.tuples(
        st.floats(0, 20, allow_nan=False),
        st.sampled_from(["stop", "crash", "partition", "heal", "priority", "start"]),
        st.sampled_from(names),
        st.integers(1, 254)), max_size=12))
    return routers, sorted(events)


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_one_best_master_after_heal(scenario):
    routers, events = scenario
    wire = Wire(latency=0.001)
    for name, priority, address, centis in routers:
        wire.add(name, priority, address, advert_centis=centis)
        wire.start(name)
    crashed: set[str] = set()
    for time, kind, name, priority in events:
        wire.run_until(time)
        router = wire.routers[name]
        if name in crashed:
            continue
        if kind == "stop" and router.state is not State.INITIALIZE:
            wire.stop(name)
        elif kind == "start" and router.state is State.INITIALIZE:
            wire.start(name)
        elif kind == "crash":
            wire.crash(name)
            crashed.add(name)
        elif kind == "partition":
            wire.partition({name}, set(wire.routers) - {name})
        elif kind == "heal":
            wire.heal()
        elif kind == "priority":
            wire.set_priority(name, priority)
    wire.heal()
    wire.run_until(wire.now + 20 * 4.1)  # many master-down intervals of the slowest router
    alive = [r for r in wire.routers.values() if r.running and r.state is not State.INITIALIZE]
    if not alive:
        assert wire.masters() == []
        return
    [master] = wire.masters()
    assert wire.routers[master].machine.priority == max(r.machine.priority for r in alive)
    assert wire.vip_holders() == [master]
