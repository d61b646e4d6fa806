"""Local versions (no sync section): kept on disk, numbered, and known without reading the
disk (status asks for the number on the node's loop)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from fulcrum.cluster.sync_store import SyncStore
from fulcrum.config.load import load_dict
from fulcrum.control.versions import LocalVersions, current_version

BASE = {"services": {"web": {"listen": ["127.0.0.1:8080"], "pool": "web"}},
        "pools": {"web": {"servers": ["127.0.0.1:9001"]}}}


def test_versions_are_numbered_on_change_only_and_survive_a_restart(tmp_path: Path) -> None:
    first, second = load_dict(BASE), load_dict({**BASE, "max_connections": 5})
    versions = LocalVersions(str(tmp_path), keep=5)
    assert versions.applied(first) == 1 and versions.applied(first) == 1
    assert versions.applied(second) == 2
    assert (tmp_path / "versions.key").stat().st_mode & 0o777 == 0o600
    again = LocalVersions(str(tmp_path), keep=5)  # a restart with the same file
    assert again.applied(second) == 2 and again.applied(first) == 3
    assert [d.version for d in again.store.documents()] == [1, 2, 3]


def test_status_reads_the_version_number_from_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    versions = LocalVersions(str(tmp_path), keep=5)
    versions.applied(load_dict(BASE))
    node = SimpleNamespace(sync=None, admin=SimpleNamespace(versions=versions))

    def no_disk(self: SyncStore) -> None:
        raise AssertionError("the store was read")

    monkeypatch.setattr(SyncStore, "documents", no_disk)
    assert current_version(node) == 1
