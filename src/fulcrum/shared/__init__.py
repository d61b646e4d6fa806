"""State the worker processes of one node share (`workers > 1`), so that every worker
makes the choices one process would: connection counters per server (counters.py), pen's
client table (clients.py), and control commands carried from the first worker to the
others (commands.py). Created by the supervisor before it forks (cli/workers.py)."""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize  # noqa: F401 - Lock() imports it lazily; `user` may not read the stdlib later
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fulcrum.shared.clients import SharedClientTable
from fulcrum.shared.counters import SharedCounters

if TYPE_CHECKING:
    from fulcrum.shared.totals import PeerTotals


@dataclass
class SharedState:
    counters: SharedCounters
    clients: SharedClientTable
    workers: int
    directory: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="fulcrum-workers-"))  # 0700
    index: int = 0  # this process's worker index, set after fork
    peers: PeerTotals | None = None  # in the first worker: the others' totals (totals.listen)

    @classmethod
    def create(cls, workers: int, client_capacity: int) -> SharedState:
        lock = multiprocessing.get_context("fork").Lock()
        return cls(SharedCounters(workers, lock), SharedClientTable(client_capacity, lock), workers)

    def bind_worker(self, index: int) -> None:
        """In a freshly forked worker: counts left by a previous worker of this index
        died with its connections."""
        self.index = index
        self.counters.bind_worker(index)

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def required(shared: SharedState | None) -> SharedState:
    """A node's `shared` where only a node with workers > 1 gets (the worker links)."""
    if shared is None:
        raise RuntimeError("the worker links need workers > 1: this node has no shared state")
    return shared
