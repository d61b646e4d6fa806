"""The versions on disk: one signed JSON document per version in STATE_DIR/sync,
named VERSION-NODE.json, the newest `keep` kept for rollback.

Every write is atomic and durable: a temporary file in the same directory, fsync,
rename over the name, fsync of the directory; a crash leaves the old file or the
new one, never half of one. Files are mode 0600: they hold the whole configuration,
secrets included (sticky-cookie keys, for instance)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from fulcrum.cluster.sync_state import Document
from fulcrum.files import atomic_write

log = logging.getLogger("fulcrum.sync")

_NAME = re.compile(r"^(\d{1,18})-(.+)\.json$")


class SyncStore:
    def __init__(self, state_dir: str | Path, secret: bytes, keep: int = 20, subdir: str = "sync"):
        self.path = Path(state_dir) / subdir
        self.secret = secret
        self.keep = keep

    def _files(self) -> list[tuple[tuple[int, str], Path]]:
        if not self.path.is_dir():
            return []
        found = []
        for entry in self.path.iterdir():
            match = _NAME.match(entry.name)
            if match:
                found.append(((int(match.group(1)), match.group(2)), entry))
        return sorted(found)

    def save(self, document: Document) -> Path:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = self.path / f"{document.version}-{_safe(document.node)}.json"
        atomic_write(target, json.dumps(document.to_json(self.secret), sort_keys=True, indent=1).encode())
        for _, old in self._files()[:-self.keep]:
            old.unlink(missing_ok=True)
        return target

    def documents(self) -> list[Document]:
        """Every readable stored version, oldest first; damaged files are skipped."""
        out = []
        for _, path in self._files():
            try:
                out.append(Document.from_json(json.loads(path.read_bytes()), self.secret))
            except (OSError, ValueError) as err:
                log.warning("sync: skipping stored version %s: %s", path, err)
        return out

    def latest(self) -> Document | None:
        documents = self.documents()
        return max(documents, key=lambda d: d.key) if documents else None

    def find(self, version: int) -> Document | None:
        """The winning document of `version` (the highest node id, as in SyncState)."""
        matching = [d for d in self.documents() if d.version == version]
        return max(matching, key=lambda d: d.key) if matching else None


def _safe(node: str) -> str:
    # a node id comes from a peer: it must not name another directory
    return re.sub(r"[^A-Za-z0-9_.-]", "_", node)


def describe(document: Document) -> dict[str, Any]:
    return {"version": document.version, "node": document.node, "time": document.time}
