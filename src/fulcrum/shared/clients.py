"""pen's client table shared by the worker processes: a client is sent to its last
server whichever worker accepted it.

One anonymous MAP_SHARED mapping made before fork: buckets of WAYS entries, each a
16-byte digest of (pool, client address), the server's counter slot and when it was
last used. A client lives in the bucket its digest names; when the bucket is full the
entry unused the longest (or expired) gives way: the least recently used of its bucket,
where pen forgets the least recently used of the whole table. The capacity is fixed at
start (the sum of the sticky pools' table sizes); every access holds one lock, for a
few microseconds."""

from __future__ import annotations

import functools
import hashlib
import mmap
import struct
from typing import Any

WAYS = 4
_ENTRY = struct.Struct("=16sqqd48s")  # digest, pool tag, slot (-1: empty), last used, client (pen's `recent`)


class SharedClientTable:
    def __init__(self, capacity: int, lock: Any):
        self.buckets = max(1, -(-capacity // WAYS))
        self.lock = lock
        self.memory = mmap.mmap(-1, self.buckets * WAYS * _ENTRY.size)
        empty = _ENTRY.pack(bytes(16), 0, -1, 0.0, b"")
        for i in range(self.buckets * WAYS):
            self.memory[i * _ENTRY.size:(i + 1) * _ENTRY.size] = empty

    def view(self, pool: str, expiry: float) -> PoolClients:
        return PoolClients(self, pool, expiry)

    @staticmethod
    @functools.lru_cache(maxsize=1024)
    def tag(pool: str) -> int:
        return int.from_bytes(hashlib.blake2b(pool.encode(), digest_size=8).digest(), "little", signed=True)

    def count(self, pool: str) -> int:
        """Clients remembered for `pool` (a scan of the whole table: for status only)."""
        tag = self.tag(pool)
        with self.lock:
            return sum(1 for _, found_tag, slot, _, _ in _ENTRY.iter_unpack(self.memory)
                       if found_tag == tag and slot >= 0)

    def items(self, pool: str) -> list[tuple[str, int, float]]:
        """(client, slot, last used) of `pool` (a scan: for pen's `recent`)."""
        tag = self.tag(pool)
        with self.lock:
            return [(client.rstrip(b"\0").decode(), slot, seen)
                    for _, found_tag, slot, seen, client in _ENTRY.iter_unpack(self.memory)
                    if found_tag == tag and slot >= 0]

    def _locate(self, pool: str, client: str) -> tuple[bytes, int]:
        digest = hashlib.blake2b(f"{pool}\0{client}".encode(), digest_size=16).digest()
        bucket = int.from_bytes(digest[:8], "little") % self.buckets
        return digest, bucket * WAYS * _ENTRY.size

    def get(self, pool: str, client: str, now: float, expiry: float) -> int | None:
        digest, base = self._locate(pool, client)
        with self.lock:
            for way in range(WAYS):
                offset = base + way * _ENTRY.size
                found, _, slot, seen, _ = _ENTRY.unpack_from(self.memory, offset)
                if found == digest and slot >= 0:
                    if expiry and now - seen > expiry:
                        _ENTRY.pack_into(self.memory, offset, bytes(16), 0, -1, 0.0, b"")
                        return None
                    return int(slot)
        return None

    def put(self, pool: str, client: str, slot: int, now: float) -> None:
        digest, base = self._locate(pool, client)
        with self.lock:
            match = empty = None
            victim, oldest = base, float("inf")
            for way in range(WAYS):
                offset = base + way * _ENTRY.size
                found, _, used_slot, seen, _ = _ENTRY.unpack_from(self.memory, offset)
                if found == digest:
                    match = offset
                elif used_slot < 0 and empty is None:
                    empty = offset
                elif seen < oldest:
                    victim, oldest = offset, seen
            target = match if match is not None else empty if empty is not None else victim
            _ENTRY.pack_into(self.memory, target, digest, self.tag(pool), slot, now, client.encode()[:48])


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
