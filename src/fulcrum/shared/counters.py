"""Per-server counters shared by the worker processes: active connections, total,
bytes relayed, failed connects.

Layout (one anonymous MAP_SHARED mapping made before fork, so no name and nothing to
clean up): a directory of SLOTS entries (a 16-byte digest of pool and server, and a
bitmask of the workers using it), then one row of SLOTS x 4 int64 per worker. Each
worker writes only its own row (no lost updates, no locks on the data path; aligned
64-bit stores do not tear); a reader sums the rows. The directory changes only when a
pool is built or reloaded, under a lock.

Node-wide figures, from any worker (the first one serves the control socket and the
admin plane): `PoolRuntime.sync_counters()` copies the node-wide sums into each
Backend's active/total/traffic/failures, or `SharedCounters.read(slot)` returns them."""

from __future__ import annotations

import hashlib
import mmap
import struct
from typing import Any

SLOTS = 4096
ACTIVE, TOTAL, TRAFFIC, FAILURES = range(4)
FIELDS = 4
_ENTRY = struct.Struct("=16sQ")  # digest, worker bitmask


def slot_key(pool: str, server: str) -> bytes:
    return hashlib.blake2b(f"{pool}\0{server}".encode(), digest_size=16).digest()


class SharedCounters:
    def __init__(self, workers: int, lock: Any, slots: int = SLOTS):
        if not 1 <= workers <= 64:
            raise ValueError("1 to 64 workers (one bit each in the directory)")
        self.workers = workers
        self.slots = slots
        self.lock = lock
        self.index = 0
        self._directory_size = slots * _ENTRY.size
        self.memory = mmap.mmap(-1, self._directory_size + workers * slots * FIELDS * 8)
        self.cells = memoryview(self.memory)[self._directory_size:].cast("q")
        self._row = 0  # offset of this worker's row in `cells`

    def bind_worker(self, index: int) -> None:
        self.index = index
        self._row = index * self.slots * FIELDS
        with self.lock:
            for slot in range(self.slots):
                digest, mask = _ENTRY.unpack_from(self.memory, slot * _ENTRY.size)
                if mask & (1 << index):
                    _ENTRY.pack_into(self.memory, slot * _ENTRY.size, digest, mask & ~(1 << index))
            self.cells[self._row:self._row + self.slots * FIELDS] = memoryview(
                bytes(self.slots * FIELDS * 8)).cast("q")

    def claim(self, pool: str, server: str) -> int:
        """The slot of (pool, server), shared by every worker that has that server."""
        digest = slot_key(pool, server)
        bit = 1 << self.index
        with self.lock:
            free = -1
            for slot in range(self.slots):
                found, mask = _ENTRY.unpack_from(self.memory, slot * _ENTRY.size)
                if found == digest:
                    _ENTRY.pack_into(self.memory, slot * _ENTRY.size, digest, mask | bit)
                    return slot
                if free < 0 and mask == 0 and not any(self.read(slot)):
                    free = slot
            if free < 0:
                raise RuntimeError(f"more than {self.slots} servers across all pools")
            _ENTRY.pack_into(self.memory, free * _ENTRY.size, digest, bit)
            return free

    def release(self, slot: int) -> None:
        """This worker no longer configures that server (its connections may still end
        here: the slot is reused only once nobody holds it and its counts are zero)."""
        with self.lock:
            digest, mask = _ENTRY.unpack_from(self.memory, slot * _ENTRY.size)
            mask &= ~(1 << self.index)
            _ENTRY.pack_into(self.memory, slot * _ENTRY.size, digest if mask else bytes(16), mask)

    def add(self, slot: int, field: int, delta: int) -> None:
        self.cells[self._row + slot * FIELDS + field] += delta

    def get(self, slot: int, field: int) -> int:
        """Node-wide: the sum over the workers (one strided slice, summed in C)."""
        return sum(self.cells[slot * FIELDS + field::self.slots * FIELDS])

    def read(self, slot: int) -> tuple[int, int, int, int]:
        """Node-wide (active, total, traffic, failures) of a slot."""
        return (self.get(slot, ACTIVE), self.get(slot, TOTAL), self.get(slot, TRAFFIC), self.get(slot, FAILURES))
