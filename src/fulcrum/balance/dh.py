"""dh: destination hashing (IPVS dh). The weighted table and fallback of `sh`,
keyed by the context's hash key (query.key, e.g. the destination address or
Host; the client address when the caller gives none)."""

from __future__ import annotations

from fulcrum.balance.base import PickContext
from fulcrum.balance.registry import register
from fulcrum.balance.sh import SourceHash


class DestinationHash(SourceHash):
    name = "dh"
    salt = "ipvs-dh"

    def key(self, query: PickContext) -> str:
        return query.hash_key


register(DestinationHash)  # not a decorator: mypyc compiles only undecorated classes
