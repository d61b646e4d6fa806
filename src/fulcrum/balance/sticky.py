"""pen's client table: remember the last server of each client address.

Bounded (`size`, pen -c): when full, the least recently used client is forgotten.
Entries older than `expiry` seconds (pen -T; 0 = never) are ignored."""

from __future__ import annotations

from collections import OrderedDict


class ClientTable:
    def __init__(self, size: int = 2048, expiry: float = 0.0):
        self.size = size
        self.expiry = expiry
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def get(self, client: str, now: float) -> str | None:
        entry = self._entries.get(client)
        if entry is None:
            return None
        server, seen = entry
        if self.expiry and now - seen > self.expiry:
            del self._entries[client]
            return None
        return server

    def put(self, client: str, server: str, now: float) -> None:
        self._entries[client] = (server, now)
        self._entries.move_to_end(client)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def items(self) -> list[tuple[str, str, float]]:
        return [(client, server, seen) for client, (server, seen) in self._entries.items()]

    def resize(self, size: int) -> None:
        self.size = size
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
