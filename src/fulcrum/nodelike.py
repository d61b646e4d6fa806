"""NodeLike: what the parts that act on a running node may use of it.

The command table (control/commands.py) and everything it calls (status, versions, pen's
control port, the control socket), config sync (cluster/sync.py), the admin plane's
lifecycle (admin/plane.py), re-reading the source (reload.py) and the worker links
(shared/) take a `NodeLike`, not a `fulcrum.node.Node`: they see this interface only,
and tests drive them with small fakes. `Node` is the one full implementation (mypy
checks that it is one wherever a Node is passed).

`edit_lock(node)` is the node's one lock for configuration edits.

A leaf: nothing of fulcrum is imported at run time (only for the type checker), so any
package may name it without an import edge.

Fakes in tests often have only `config`, `pools`, `now()` and `reload()`; code that reads
one of the optional parts (`health`, `cluster`, `kernel`, `shared`, `sync`, `admin`) of a node that
may be a fake says so with `getattr(node, name, None)`.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from fulcrum.admin.plane import AdminPlane
    from fulcrum.balance.pool import PoolRuntime
    from fulcrum.cluster.process import EngineProcess
    from fulcrum.cluster.sync import ConfigSync
    from fulcrum.config.model import Config
    from fulcrum.health.monitor import HealthMonitor
    from fulcrum.kernel.part import KernelPart
    from fulcrum.observe import Observer
    from fulcrum.proxy.context import ServiceContext
    from fulcrum.shared import SharedState


class NodeLike(Protocol):
    # -- configuration --------------------------------------------------------------
    config: Config  # the running model
    source_config: Config  # the source as last read: runtime changes are the difference (reload.py)
    config_path: str | None  # the file a synced or applied change is written to
    loader: Callable[[], Config] | None  # reads the source again (None: nothing to re-read)

    # -- live state -----------------------------------------------------------------
    pools: dict[str, PoolRuntime]  # pool name -> its servers' live state
    contexts: dict[str, ServiceContext]  # service name -> what its connections share
    observer: Observer  # finished requests and connections (observe.py)
    reload_results: dict[str, int]  # "applied"/"rejected" re-reads of the source, for metrics
    owns_machine: bool  # owns the machine-wide parts (VRRP engine, sync, control socket)
    started_at: float  # wall clock, for status: uptime

    # -- parts (None when the configuration has no such section) --------------------
    health: HealthMonitor | None
    engine: EngineProcess | None  # the VRRP engine's process (config.cluster is its section)
    kernel: KernelPart
    shared: SharedState | None  # with workers > 1
    sync: ConfigSync | None

    @property
    def admin(self) -> AdminPlane | None:
        """The running admin plane (admin/plane.py's AdminPart sets it, never a caller)."""

    @property
    def connections(self) -> int:
        """Connections open now in this process."""

    def now(self) -> float:
        """The event loop's clock."""

    async def reload(self, config: Config) -> None:
        """Apply `config` hitlessly (raises ReloadError or ConfigError with nothing changed)."""

    async def reload_from_source(self) -> dict[str, Any]:
        """Re-read the source keeping runtime changes (reload.py)."""


_locks: weakref.WeakKeyDictionary[NodeLike, asyncio.Lock] = weakref.WeakKeyDictionary()


def edit_lock(node: NodeLike) -> asyncio.Lock:
    """The node's one lock for configuration edits: the command table's config edits and
    applies (control/commands.py) and config sync's adoption of a peer's change
    (cluster/sync.py) take it, so two edits of the same snapshot never lose one change.
    Kept beside the node, not in either of them, so neither imports the other."""
    lock = _locks.get(node)
    if lock is None:
        lock = _locks[node] = asyncio.Lock()
    return lock
