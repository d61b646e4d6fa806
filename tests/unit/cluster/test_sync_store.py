"""The version store: signed documents on disk, atomic writes, the last N kept."""

from __future__ import annotations

import json
import stat

from fulcrum.cluster.sync_state import Document
from fulcrum.cluster.sync_store import SyncStore

SECRET = b"a shared secret of the two nodes"


def test_saved_versions_come_back_newest_last_and_only_keep_are_kept(tmp_path):
    store = SyncStore(tmp_path, SECRET, keep=3)
    for version in range(1, 6):
        store.save(Document(version, "lb0", float(version), {"n": version}))
    assert [d.version for d in store.documents()] == [3, 4, 5]
    assert store.latest() == Document(5, "lb0", 5.0, {})
    assert store.find(4) is not None and store.find(4).config == {"n": 4}
    assert store.find(1) is None


def test_versions_are_ordered_as_numbers_and_ties_by_node(tmp_path):
    store = SyncStore(tmp_path, SECRET)
    store.save(Document(10, "lb0", 0.0, {}))
    store.save(Document(9, "lb1", 0.0, {}))
    store.save(Document(10, "lb1", 0.0, {"winner": True}))
    assert store.latest().key == (10, "lb1")
    assert store.find(10).config == {"winner": True}


def test_files_are_private_and_hold_the_signed_document(tmp_path):
    store = SyncStore(tmp_path, SECRET)
    path = store.save(Document(1, "lb0", 0.0, {"secret": "cookie key"}))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    data = json.loads(path.read_text())
    assert data["version"] == 1 and len(data["hmac"]) == 64
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_a_damaged_or_foreign_file_is_skipped(tmp_path):
    store = SyncStore(tmp_path, SECRET)
    store.save(Document(1, "lb0", 0.0, {}))
    (store.path / "2-lb0.json").write_text("{ half a docu")
    (store.path / "3-lb0.json").write_text(json.dumps(Document(3, "lb0", 0.0, {}).to_json(b"x" * 16)))
    assert [d.version for d in store.documents()] == [1]


def test_a_node_id_cannot_name_another_directory(tmp_path):
    store = SyncStore(tmp_path / "state", SECRET)
    path = store.save(Document(1, "../../etc/x", 0.0, {}))
    assert path.parent == store.path
    assert store.latest().node == "../../etc/x"
