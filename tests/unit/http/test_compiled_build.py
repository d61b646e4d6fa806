"""The optional mypyc build (`make compiled`): a source edited after the build is found, so
the stale build is never run in its place."""

from __future__ import annotations

import os
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

from fulcrum import stale_build


def test_a_source_newer_than_its_build_is_stale(tmp_path: Path) -> None:
    (tmp_path / "core").mkdir()
    source, built = tmp_path / "core" / "connection.py", tmp_path / "core" / f"connection{EXTENSION_SUFFIXES[0]}"
    other, other_built = tmp_path / "headers.py", tmp_path / f"headers{EXTENSION_SUFFIXES[0]}"
    for path, when in ((source, 200), (built, 100), (other, 100), (other_built, 200)):
        path.write_bytes(b"")
        os.utime(path, (when, when))
    (tmp_path / "plain.py").write_bytes(b"")  # no build: nothing to compare
    assert stale_build(str(tmp_path)) == [str(source)]
    os.utime(built, (300, 300))  # built again
    assert stale_build(str(tmp_path)) == []
