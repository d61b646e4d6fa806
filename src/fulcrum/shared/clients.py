"""pen's client table shared by the worker processes: a client is sent to its last
server whichever worker accepted it.

One anonymous MAP_SHARED mapping made before fork: buckets of WAYS entries, each the
pool's tag, the server's counter slot, when it was last used and the client address.
A client lives in the bucket its hash names (Python's string hash: the workers are
forks of one supervisor, so they share its hash seed); when the bucket is full the
entry unused the longest (or expired) gives way: the least recently used of its bucket,
where pen forgets the least recently used of the whole table. The capacity is fixed at
start (the sum of the sticky pools' table sizes); every access holds one lock for one
bucket's read or write."""

from __future__ import annotations

import functools
import hashlib
import mmap
import struct
from typing import Any

WAYS = 4
CLIENT_BYTES = 48  # an IPv6 address with a zone fits
_ENTRY = struct.Struct(f"=qqd{CLIENT_BYTES}s")  # pool tag, slot (-1: empty), last used, client
_BUCKET = struct.Struct("=" + f"qqd{CLIENT_BYTES}s" * WAYS)
_FIELDS = 4  # per entry in an unpacked bucket


class SharedClientTable:
    def __init__(self, capacity: int, lock: Any):
        self.buckets = max(1, -(-capacity // WAYS))
        # the C lock under multiprocessing's wrapper: one call less per access
        self.lock = getattr(lock, "_semlock", lock)
        self.memory = mmap.mmap(-1, self.buckets * _BUCKET.size)
        self.memory[:] = _ENTRY.pack(0, -1, 0.0, b"") * (self.buckets * WAYS)

    def view(self, pool: str, expiry: float) -> PoolClients:
        return PoolClients(self, pool, expiry)

    @staticmethod
    @functools.lru_cache(maxsize=1024)
    def tag(pool: str) -> int:
        """A pool's tag: the same in every process (not Python's per-run string hash)."""
        return int.from_bytes(hashlib.blake2b(pool.encode(), digest_size=8).digest(), "little", signed=True)

    def _bucket(self, tag: int, client: bytes) -> int:
        return hash((tag, client)) % self.buckets * _BUCKET.size

    def count(self, pool: str) -> int:
        """Clients remembered for `pool` (a scan of the whole table: for status only)."""
        return len(self.items(pool))

    def items(self, pool: str) -> list[tuple[str, int, float]]:
        """(client, slot, last used) of `pool` (a scan: status and pen's `recent`)."""
        tag = self.tag(pool)
        with self.lock:
            return [(client.rstrip(b"\0").decode(), slot, seen)
                    for found, slot, seen, client in _ENTRY.iter_unpack(self.memory)
                    if found == tag and slot >= 0]

    def get(self, pool: str, client: str, now: float, expiry: float) -> int | None:
        tag, key = self.tag(pool), client.encode()[:CLIENT_BYTES].ljust(CLIENT_BYTES, b"\0")
        base = self._bucket(tag, key)
        with self.lock:
            fields = _BUCKET.unpack_from(self.memory, base)
            for i in range(0, _FIELDS * WAYS, _FIELDS):
                if fields[i + 1] >= 0 and fields[i] == tag and fields[i + 3] == key:
                    if expiry and now - fields[i + 2] > expiry:
                        _ENTRY.pack_into(self.memory, base + i // _FIELDS * _ENTRY.size, 0, -1, 0.0, b"")
                        return None
                    return int(fields[i + 1])
        return None

    def put(self, pool: str, client: str, slot: int, now: float) -> None:
        tag, key = self.tag(pool), client.encode()[:CLIENT_BYTES].ljust(CLIENT_BYTES, b"\0")
        base = self._bucket(tag, key)
        with self.lock:
            fields = _BUCKET.unpack_from(self.memory, base)
            match = empty = oldest = None
            for way in range(WAYS):
                found, used_slot, seen, stored = fields[way * _FIELDS:(way + 1) * _FIELDS]
                if used_slot >= 0 and found == tag and stored == key:
                    match = way
                    break
                if used_slot < 0:
                    empty = way if empty is None else empty
                elif oldest is None or seen < fields[oldest * _FIELDS + 2]:
                    oldest = way
            way = next(w for w in (match, empty, oldest) if w is not None)
            _ENTRY.pack_into(self.memory, base + way * _ENTRY.size, tag, slot, now, key)


class PoolClients:
    """One pool's view, with ClientTable's interface (get/put by server key)."""

    def __init__(self, table: SharedClientTable, pool: str, expiry: float):
        self.table = table
        self.pool = pool
        self.expiry = expiry
        self.keys: dict[int, str] = {}  # counter slot -> server key, set by the pool
        self.slots: dict[str, int] = {}

    def get(self, client: str, now: float) -> str | None:
        slot = self.table.get(self.pool, client, now, self.expiry)
        return None if slot is None else self.keys.get(slot)

    def put(self, client: str, server: str, now: float) -> None:
        slot = self.slots.get(server)
        if slot is not None:
            self.table.put(self.pool, client, slot, now)

    def resize(self, size: int) -> None:
        """The shared table keeps the capacity it was made with."""

    def __len__(self) -> int:
        return self.table.count(self.pool)

    def items(self) -> list[tuple[str, str, float]]:
        return [(client, self.keys[slot], seen) for client, slot, seen in self.table.items(self.pool)
                if slot in self.keys]
