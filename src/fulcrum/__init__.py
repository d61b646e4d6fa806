"""fulcrum: a high-availability TCP/HTTP load balancer.

`make compiled` may have built the hot modules with mypyc beside their sources (optional,
issue 10); Python then imports the build, not the .py. A source edited after the build would
be silently ignored, so a stale build stops the import here."""

from __future__ import annotations

import os
from importlib.machinery import EXTENSION_SUFFIXES

__version__ = "0.1.0"


def stale_build(directory: str) -> list[str]:
    """Sources under `directory` that are newer than the compiled module built from them."""
    stale = []
    suffixes = tuple(EXTENSION_SUFFIXES)
    for parent, _, names in os.walk(directory):
        for name in names:
            if name.endswith(suffixes):
                stem = name[:name.index(".")]
                source = os.path.join(parent, stem + ".py")
                built = os.path.join(parent, name)
                if os.path.exists(source) and os.stat(source).st_mtime > os.stat(built).st_mtime:
                    stale.append(source)
    return sorted(stale)


_stale = stale_build(os.path.dirname(__file__))
if _stale:
    raise ImportError(f"the mypyc build is older than {', '.join(_stale)}: "
                      "run `make compiled` again, or `make uncompiled`")
