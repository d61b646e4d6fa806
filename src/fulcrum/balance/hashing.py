"""Stable hashing for the hash schedulers (sh, dh, mh, hash, lblc).

Python's hash() of a str is salted per process (PYTHONHASHSEED), so two nodes,
or two worker processes, would send the same client to different servers.
BLAKE2b is in the stdlib, fast on short keys and well mixed in every bit."""

from __future__ import annotations

import hashlib


def stable_hash(text: str, salt: str = "") -> int:
    """A 64-bit hash of `text` that is the same in every process and on every node.
    Different `salt`s (at most 16 bytes) give independent hash functions."""
    digest = hashlib.blake2b(text.encode(), digest_size=8, person=salt.encode()).digest()
    return int.from_bytes(digest, "big")
