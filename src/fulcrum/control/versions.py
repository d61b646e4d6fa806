"""Whole-configuration changes of a running node: apply one, list the kept versions,
roll back to one. Used by the command table (config.apply, config.versions,
config.rollback), hence by the REST API, the web UI and `fulcrum ctl`.

Where versions live:
- with a `sync` section, config sync's store (cluster/sync_store.py) is the history:
  every applied change is a version there already, on every node; a rollback is a
  forward change to an old version's shared part merged with this node's settings,
  so every node moves to it (as `fulcrum sync rollback` does);
- without one, `LocalVersions` keeps every applied configuration the same way
  (signed JSON documents, atomically written, the newest `admin.keep`) in
  admin.state_dir/versions, with a key of its own made on first use.

An applied configuration is also written to the node's configuration file
(atomically), so a restart keeps it. With several worker processes the file is
written and the supervisor told to reload (SIGHUP): every worker reads it."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fulcrum.cluster.sync_state import Document, digest
from fulcrum.cluster.sync_store import SyncStore
from fulcrum.config.errors import ConfigError
from fulcrum.config.load import load_dict, load_file
from fulcrum.config.model import Config

if TYPE_CHECKING:
    from fulcrum.admin.plane import AdminPlane
    from fulcrum.cluster.sync import ConfigSync
    from fulcrum.nodelike import NodeLike

log = logging.getLogger("fulcrum.versions")

LOCAL_NODE = "local"


class LocalVersions:
    """Versions of a node without config sync."""

    def __init__(self, state_dir: str, keep: int):
        self.state_dir = Path(state_dir)
        self.keep = keep
        self._store: SyncStore | None = None
        self.latest: int | None = None  # the newest version number, kept so status never reads the disk
        self._latest_digest: str | None = None

    @property
    def store(self) -> SyncStore:
        if self._store is None:
            self._store = SyncStore(self.state_dir, self._key(), self.keep, subdir="versions")
        return self._store

    def _key(self) -> bytes:
        path = self.state_dir / "versions.key"
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
        return key

    def applied(self, config: Config) -> int | None:
        """Keep `config` as a new version if it differs from the newest: its number."""
        body = config.model_dump(mode="json")
        wanted = digest(body)
        if self._latest_digest == wanted:
            return self.latest
        try:
            latest = self.store.latest()
            if latest is not None and digest(latest.config) == wanted:
                version = latest.version
            else:
                version = (latest.version if latest else 0) + 1
                self.store.save(Document(version, LOCAL_NODE, time.time(), body))
        except (OSError, ValueError) as err:
            log.error("versions: not kept in %s: %s", self.state_dir, err)
            return None
        self.latest, self._latest_digest = version, wanted
        return version


def _store(node: NodeLike) -> SyncStore | None:
    sync: ConfigSync | None = getattr(node, "sync", None)
    if sync is not None:
        return sync.store
    plane: AdminPlane | None = getattr(node, "admin", None)
    if plane is not None and plane.versions is not None:
        return plane.versions.store
    return None


def current_version(node: NodeLike) -> int | None:
    """From memory (status asks for it on the node's loop: no disk reads there)."""
    sync: ConfigSync | None = getattr(node, "sync", None)
    if sync is not None:
        return sync.state.key[0]
    plane: AdminPlane | None = getattr(node, "admin", None)
    if plane is not None and plane.versions is not None:
        return plane.versions.latest
    return None


def list_versions(node: NodeLike) -> list[dict[str, Any]]:
    """Every kept version, oldest first; `current` marks the one running."""
    store = _store(node)
    if store is None:
        raise ConfigError.at("admin", "no versions are kept: add an admin or sync section")
    running = digest(_comparable(node, node.config))
    return [{"version": d.version, "node": d.node, "time": d.time,
             "current": digest(d.config) == running} for d in store.documents()]


def _comparable(node: NodeLike, config: Config) -> dict[str, Any]:
    if node.sync is not None:
        from fulcrum.config.split import shared_part

        return shared_part(config)
    return config.model_dump(mode="json")


def version_config(node: NodeLike, version: int) -> Config:
    """Version `version` as this node would run it (its own local settings kept)."""
    store = _store(node)
    document = store.find(version) if store is not None else None
    if document is None:
        raise ConfigError.at("version", f"version {version} is not kept here")
    if node.sync is not None:
        from fulcrum.config.split import merge

        return merge(document.config, node.config)
    data = dict(document.config)
    # node-local sections stay as they run: a rollback must not lock the operator out
    data["admin"] = node.config.admin.model_dump(mode="json") if node.config.admin else None
    return load_dict(data)


async def apply_config(node: NodeLike, config: Config, why: str) -> str:
    """Run `config` hitlessly, keep it in the configuration file, sync and version it."""
    from fulcrum.cluster.sync import write_config_file

    path = node.config_path
    if config.workers > 1 and node.config.workers > 1 and path:
        write_config_file(path, config, why)
        os.kill(os.getppid(), signal.SIGHUP)  # the supervisor has every worker read the file
        return "written; every worker reloads it"
    await node.reload(config)  # start of sync and versions: the node's apply hooks
    if path:
        try:
            same = load_file(path) == config  # config sync may have written it already
        except ConfigError:
            same = False
        if not same:
            try:
                write_config_file(path, config, why)
                same = True
            except OSError as err:
                log.error("%s not rewritten (a restart would start from it): %s", path, err)
        if same:
            node.source_config = config  # the file says this now: nothing of it is a runtime change
    return "applied"
