"""The pure core of config sync: versions, signatures, and the decisions for a local
change, a peer's offer and a peer's hello."""

from __future__ import annotations

import pytest

from fulcrum.cluster.sync_state import (
    Adopt,
    Apply,
    Document,
    Ignore,
    Offer,
    Publish,
    SyncState,
    signed,
    verified,
)

SECRET = b"a shared secret of the two nodes"
A = {"pools": {"web": {"servers": ["10.0.0.1:80"]}}}
B = {"pools": {"web": {"servers": ["10.0.0.2:80"]}}}


def published(state: SyncState, config: dict, now: float = 1.0) -> Document:
    decision = state.local_change(config, now)
    assert isinstance(decision, Publish)
    return decision.document


def test_first_local_configuration_is_version_1_then_each_change_one_more():
    lb0 = SyncState("lb0")
    first = published(lb0, A)
    assert first.key == (1, "lb0") and first.config == A
    assert published(lb0, B, now=2.0).key == (2, "lb0")
    assert lb0.latest is not None and lb0.latest.config == B


def test_a_reload_without_a_shared_change_makes_no_version():
    lb0 = SyncState("lb0")
    published(lb0, A)
    assert isinstance(lb0.local_change({**A}, 5.0), Ignore)
    assert lb0.key == (1, "lb0")


def test_a_newer_offer_is_applied_and_coming_back_is_not_a_new_version():
    lb0, lb1 = SyncState("lb0"), SyncState("lb1", Document(1, "lb0", 0.0, A))
    published(lb0, A)
    change = published(lb0, B)
    decision = lb1.offered(change)
    assert decision == Apply(change)
    lb1.applied(change)
    # lb1's reload hook reports the configuration it now runs: nothing new to send back
    assert isinstance(lb1.local_change(B, 3.0), Ignore)
    assert lb1.key == (2, "lb0")


@pytest.mark.parametrize("version, node", [(1, "lb0"), (2, "lb0"), (2, "lb1"), (1, "zz")])
def test_older_or_equal_offers_are_ignored(version, node):
    lb1 = SyncState("lb1")
    published(lb1, A)
    published(lb1, B)  # (2, "lb1")
    decision = lb1.offered(Document(version, node, 0.0, {"other": True}))
    assert isinstance(decision, Ignore)
    assert lb1.latest is not None and lb1.latest.config == B


def test_concurrent_versions_are_ordered_by_node_id_the_same_on_both_nodes():
    lb0, lb1 = SyncState("lb0"), SyncState("lb1")
    mine0, mine1 = published(lb0, A), published(lb1, B)
    assert mine0.version == mine1.version == 1
    assert lb0.offered(mine1) == Apply(mine1)  # (1, "lb1") > (1, "lb0")
    assert isinstance(lb1.offered(mine0), Ignore)


def test_a_newer_offer_with_the_content_already_running_is_adopted_without_reload():
    lb0, lb1 = SyncState("lb0"), SyncState("lb1")
    published(lb0, A)
    theirs = published(lb1, dict(A))
    assert lb0.offered(theirs) == Adopt(theirs)


def test_a_local_change_outnumbers_every_version_seen():
    lb0 = SyncState("lb0")
    published(lb0, A)
    lb0.hello((7, "lb1"))  # a peer is far ahead; we have not pulled yet
    assert published(lb0, B).version == 8


def test_hello_offers_our_document_only_to_a_peer_that_is_behind():
    lb0 = SyncState("lb0")
    ours = published(lb0, A)
    assert lb0.hello((0, "")) == Offer(ours)
    assert isinstance(lb0.hello((1, "lb0")), Ignore)
    assert isinstance(lb0.hello((3, "lb1")), Ignore)
    assert isinstance(SyncState("new").hello((0, "")), Ignore)  # nothing to offer


def test_a_failed_apply_restores_the_previous_document():
    lb1 = SyncState("lb1")
    before = published(lb1, A)
    change = Document(2, "lb0", 0.0, B)
    lb1.applied(change)
    lb1.restore(before)
    assert lb1.key == (1, "lb1")
    assert lb1.offered(change) == Apply(change)  # tried again on the next offer or hello


def test_documents_are_signed_and_tampering_is_detected():
    document = Document(3, "lb0", 12.5, A)
    data = document.to_json(SECRET)
    assert Document.from_json(data, SECRET) == document
    assert Document.from_json(data, SECRET).config == A
    with pytest.raises(ValueError, match="hmac"):
        Document.from_json(data, b"another secret of sixteen bytes")
    tampered = {**data, "config": B}
    with pytest.raises(ValueError, match="hmac"):
        Document.from_json(tampered, SECRET)
    bumped = {**data, "version": 4}
    with pytest.raises(ValueError, match="hmac"):
        Document.from_json(bumped, SECRET)


@pytest.mark.parametrize("body", [{"version": 0, "node": "a", "time": 1, "config": {}},
                                  {"version": True, "node": "a", "time": 1, "config": {}},
                                  {"version": 1, "node": "", "time": 1, "config": {}},
                                  {"version": 1, "node": "a", "time": 1, "config": []}])
def test_malformed_documents_are_refused_even_when_signed(body):
    with pytest.raises(ValueError, match="malformed"):
        Document.from_json(signed(body, SECRET), SECRET)


def test_signature_covers_the_canonical_form_not_key_order():
    message = signed({"b": 1, "a": [1, 2]}, SECRET)
    reordered = {"hmac": message["hmac"], "a": [1, 2], "b": 1}
    assert verified(reordered, SECRET) == {"a": [1, 2], "b": 1}
    assert verified({**reordered, "b": 2}, SECRET) is None
    assert verified({"a": 1}, SECRET) is None
    assert verified("not a dict", SECRET) is None


def test_freshness_refuses_old_future_repeated_and_pre_start_messages():
    from fulcrum.cluster.sync_state import Freshness

    fresh = Freshness(window=60, started=1000.0)
    message = {"time": 1010.0, "nonce": "a" * 32}
    assert fresh.refuse(message, now=1020.0) is None
    assert "already received" in fresh.refuse(dict(message), now=1021.0)
    assert "outside max_clock_skew" in fresh.refuse({"time": 900.0, "nonce": "b" * 32}, now=1020.0)
    assert "outside max_clock_skew" in fresh.refuse({"time": 1100.0, "nonce": "c" * 32}, now=1020.0)
    assert "before this node started" in fresh.refuse({"time": 999.0, "nonce": "d" * 32}, now=1020.0)
    assert "no time or nonce" in fresh.refuse({"time": 1010.0}, now=1020.0)
    assert "no time or nonce" in fresh.refuse({"time": 1010.0, "nonce": "short"}, now=1020.0)
    # nonces are forgotten only once their messages could no longer be inside the window
    assert fresh.refuse({"time": 1200.0, "nonce": "e" * 32}, now=1200.0) is None
    assert "a" * 32 not in fresh.seen and "e" * 32 in fresh.seen
