"""Property: however local changes, lost offers and exchanges interleave among three
nodes, a round of hellos leaves every node on the same version and content, a node's
version never goes down, and applying a peer's version never makes a new one."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from fulcrum.cluster.sync_state import Adopt, Apply, Document, Ignore, Offer, Publish, SyncState

NODES = ("lb0", "lb1", "lb2")
CONTENTS = [{"weight": n} for n in range(4)]


class Cluster:
    def __init__(self) -> None:
        self.states = {name: SyncState(name) for name in NODES}
        self.running = {name: CONTENTS[0] for name in NODES}
        self.in_flight: list[tuple[str, Document]] = []

    def change(self, node: str, content: dict) -> None:
        self.running[node] = content
        decision = self.states[node].local_change(content, 0.0)
        if isinstance(decision, Publish):
            self.in_flight += [(peer, decision.document) for peer in NODES if peer != node]

    def deliver(self, to: str, document: Document) -> None:
        state = self.states[to]
        before = state.key
        decision = state.offered(document)
        if isinstance(decision, Apply | Adopt):
            state.applied(document)
            self.running[to] = document.config
            # the node's reload hook reports what it runs now: never a new version
            assert isinstance(state.local_change(document.config, 0.0), Ignore)
        assert state.key >= before

    def hello(self, asker: str, peer: str) -> None:
        mine, theirs = self.states[asker], self.states[peer]
        theirs.seen(mine.key[0])
        if theirs.latest is not None and mine.key < theirs.key:
            self.deliver(asker, theirs.latest)  # the reply carries the newer document
            return
        decision = mine.hello(theirs.key)
        if isinstance(decision, Offer):
            self.deliver(peer, decision.document)


step = st.one_of(
    st.tuples(st.just("change"), st.sampled_from(NODES), st.sampled_from(range(len(CONTENTS)))),
    st.tuples(st.just("deliver"), st.integers(0, 20), st.booleans()),  # bool: lost instead
    st.tuples(st.just("hello"), st.sampled_from(NODES), st.sampled_from(NODES)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(step, max_size=40))
def test_any_interleaving_converges_after_one_round_of_hellos(steps) -> None:
    cluster = Cluster()
    for name in NODES:
        cluster.change(name, CONTENTS[0])  # every node's first start
    for kind, a, b in steps:
        if kind == "change":
            cluster.change(a, CONTENTS[b])
        elif kind == "deliver" and cluster.in_flight:
            to, document = cluster.in_flight.pop(a % len(cluster.in_flight))
            if not b:
                cluster.deliver(to, document)
        elif kind == "hello" and a != b:
            cluster.hello(a, b)
    # anti-entropy: each node exchanges once with each other node
    for asker in NODES:
        for peer in NODES:
            if asker != peer:
                cluster.hello(asker, peer)
    keys = {state.key for state in cluster.states.values()}
    assert len(keys) == 1
    assert all(cluster.running[n] == cluster.states[n].latest.config for n in NODES)
    assert len({str(cluster.running[n]) for n in NODES}) == 1
